// K/V bytes per token and per session against hand-computed values.
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/rng.h"
#include "kvpack/plan.h"

namespace kvpack::plan {
namespace {

using format::KVPolicy;

KVPolicy policy(const char* spec) {
  return KVPolicy::parse(spec);
}

ModelShape preset(const char* name) {
  return preset_shape(find_preset(name));
}

// One layer, one KV head: the smallest model, for padding cases.
ModelShape tiny(int head_dim) {
  ModelShape m;
  m.name = "tiny";
  m.layers = {{.q_heads = 1, .kv_heads = 1}};
  m.head_dim_k = m.head_dim_v = head_dim;
  m.native_context = m.max_context = 4096;
  return m;
}

TEST(Footprint, Qwen3_8BMatchesTheIssueFigures) {
  // 36 layers x 8 KV heads x 128 dims x (K + V):
  // f16: 2 bytes per value -> 36 * 8 * 128 * 2 * 2 = 147,456.
  // q8: per head and token 128 int8 + 4 f16 scales = 136 bytes; a 32-token page is 4,352 bytes,
  // already a multiple of 64, so page alignment adds nothing: 36 * 8 * 136 * 2 = 78,336.
  const ModelShape m = preset("qwen3-8b");
  EXPECT_EQ(kv_footprint(m, policy("k=f16,v=f16")).bytes_per_token_full(), 147456);
  EXPECT_EQ(kv_footprint(m, policy("k=q8,v=q8")).bytes_per_token_full(), 78336);
  // q4: 64 bytes of nibbles + 8 bytes of scales = 72 per head and token; page 2,304 = 36 x 64.
  EXPECT_EQ(kv_footprint(m, policy("k=q4,v=q8")).bytes_per_token_full(), 36 * 8 * (72 + 136));
  EXPECT_EQ(kv_footprint(m, policy("k=f16,v=f16")).bytes_per_token_sliding(), 0);
}

TEST(Footprint, PagePaddingIsCounted) {
  // Head dim 8, q8: one group of 8 int8 + one f16 scale = 10 bytes per token. At 32-token pages
  // that is 320 bytes (5 x 64, no padding); at 16 tokens 160 bytes, padded to 192.
  const ModelShape m = tiny(8);
  EXPECT_EQ(kv_footprint(m, policy("k=q8,v=q8"), 32).bytes_per_token_full(), 20);
  EXPECT_EQ(kv_footprint(m, policy("k=q8,v=q8"), 16).full_page_bytes, 2u * 192);
  EXPECT_EQ(kv_footprint(m, policy("k=q8,v=q8"), 16).bytes_per_token_full(), 24);
}

TEST(Footprint, SessionBytesCountWholePagesAndTheTail) {
  const ModelShape m = preset("qwen3-8b");
  const KvFootprint fp = kv_footprint(m, policy("k=q8,v=q8"));
  // f32 tail: one 32-token page of K and V per layer: 36 * 8 * 32 * 256 * 4 bytes.
  EXPECT_EQ(fp.tail_bytes, 9437184u);
  EXPECT_EQ(fp.session_bytes(0), fp.tail_bytes);
  EXPECT_EQ(fp.session_bytes(31), fp.tail_bytes);  // still in the unencoded tail
  EXPECT_EQ(fp.session_bytes(32), fp.tail_bytes + 78336u * 32);
  EXPECT_EQ(fp.session_bytes(131072), 78336ull * 131072 + 9437184);
}

TEST(Footprint, Gemma3SlidingLayersStopGrowingAtTheirWindow) {
  const ModelShape m = preset("gemma-3-12b");
  ASSERT_EQ(m.sliding_layers(), 40);
  ASSERT_EQ(m.window(), 1024);
  const KvFootprint fp = kv_footprint(m, policy("k=f16,v=f16"));
  // f16, head dim 256: 1,024 bytes of K+V per head and token.
  EXPECT_EQ(fp.bytes_per_token_full(), 8 * 8 * 1024);      // 8 global layers
  EXPECT_EQ(fp.bytes_per_token_sliding(), 40 * 8 * 1024);  // 40 sliding layers
  EXPECT_EQ(fp.sliding_pages, 32);                         // 1024 / 32
  // At 128k: global 65,536 x 131,072 + sliding 327,680 x 1,024 + tail 48 * 8 * 32 * 512 * 4.
  EXPECT_EQ(fp.session_bytes(131072), 8589934592ull + 335544320ull + 25165824ull);
  // Past the window only the global layers grow.
  const uint64_t grow = fp.session_bytes(131072) - fp.session_bytes(65536);
  EXPECT_EQ(grow, 65536ull * 65536);
  // Within the window both grow.
  EXPECT_EQ(fp.session_bytes(1024) - fp.session_bytes(512), (65536ull + 327680) * 512);
}

TEST(Footprint, MaxContextIsTheLargestWholePageThatFits) {
  Rng rng(7);
  for (const char* name : {"qwen3-8b", "gemma-3-12b", "gemma-2-9b", "qwen2.5-7b"}) {
    const ModelShape m = preset(name);
    for (const char* spec : {"k=f16,v=f16", "k=q8,v=q4", "k=turbo3,v=turbo4"}) {
      const KvFootprint fp = kv_footprint(m, policy(spec));
      for (int i = 0; i < 200; ++i) {
        const uint64_t avail = rng.next() % (uint64_t{40} << 30);
        const int64_t c = fp.max_context(avail);
        ASSERT_GE(c, 0);
        ASSERT_EQ(c % 32, 0);
        if (avail < fp.tail_bytes) {
          ASSERT_EQ(c, 0);
          continue;
        }
        ASSERT_LE(fp.session_bytes(c), avail) << name << " " << spec;
        ASSERT_GT(fp.session_bytes(c + 32), avail) << name << " " << spec;
      }
    }
  }
}

TEST(Footprint, EverySlidingLayerMeansUnboundedContext) {
  ModelShape m = tiny(64);
  m.layers[0].window = 4096;
  const KvFootprint fp = kv_footprint(m, policy("k=f16,v=f16"));
  EXPECT_EQ(fp.max_context(fp.session_bytes(1 << 20)), -1);
  EXPECT_EQ(fp.session_bytes(1 << 20), fp.session_bytes(8192));
}

TEST(Footprint, PerLayerOverridesAndLayersWithoutKv) {
  ModelShape m = preset("qwen3-8b");
  const uint64_t q8_page = 8 * 2 * 4352;
  const uint64_t f16_page = 8 * 2 * 8192;
  const KvFootprint fp = kv_footprint(m, policy("k=q8,v=q8;0,-1:k=f16,v=f16"));
  EXPECT_EQ(fp.full_page_bytes, 34 * q8_page + 2 * f16_page);
  m.layers[5].kv_heads = 0;  // e.g. a recurrent layer: no K/V
  EXPECT_EQ(kv_footprint(m, policy("k=q8,v=q8")).full_page_bytes, 35 * q8_page);
}

TEST(Footprint, FormatsThatCannotServeTheModelAreErrors) {
  const ModelShape m = preset("qwen3-8b");
  try {
    kv_footprint(m, policy("k=f16,v=kivi4"));
    FAIL() << "kivi4 is key-only";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kivi4"), std::string::npos) << e.what();
  }
  try {
    kv_footprint(m, policy("k=q8,v=q8;40:k=f16"));
    FAIL() << "layer 40 does not exist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("40"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kvpack::plan
