// `kvpack plan` and the cache agree: for a Gemma 3 shaped model (5 sliding layers to 1 global)
// at a context several times its window, the planner's K/V figure is exactly the bytes a cache
// of that model reserves for one session, and filling a session to that context in the cache
// holds, at its peak, exactly the planner's pages -- one page fewer does not do.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/rng.h"
#include "error_of.h"
#include "kvpack/cache.h"
#include "kvpack/plan.h"

namespace kvpack::plan {
namespace {

constexpr int kLayers = 12, kKvHeads = 2, kHeadDim = 64, kWindow = 512, kPage = 32;
constexpr int64_t kContext = 8192;  // 16 windows
constexpr int kChunk = 256;         // prefill tokens per pass, as the forward pass runs them

ModelShape gemma3_shaped() {
  ModelShape m;
  m.name = "gemma3-shaped";
  m.arch = "gemma3";
  for (int l = 0; l < kLayers; ++l) {
    m.layers.push_back({.q_heads = 4, .kv_heads = kKvHeads, .window = l % 6 != 5 ? kWindow : 0});
  }
  m.head_dim_k = m.head_dim_v = kHeadDim;
  m.native_context = m.max_context = 32768;
  return m;
}

cache::CacheConfig cache_config(const format::KVPolicy& policy, uint32_t pages) {
  cache::CacheConfig c;
  c.n_layers = kLayers;
  c.n_kv_heads = kKvHeads;
  c.head_dim_k = c.head_dim_v = kHeadDim;
  c.page_tokens = kPage;
  c.policy = policy;
  c.n_pages = pages;
  for (int l = 0; l < kLayers; ++l) c.layer_window.push_back(l % 6 != 5 ? kWindow : 0);
  c.salt = "gemma3-shaped";
  return c;
}

// Grows one session to `n` tokens as an engine does: steps of one token (decode) up to `from`,
// then one prompt of the rest prefilled in chunks (the order that needs the most pages when
// `from` is where a sliding group holds most). Throws the cache's errors.
void fill(cache::Cache& cache, int64_t from, int64_t n) {
  const cache::CacheConfig& c = cache.config();
  const cache::SeqId s = cache.create();
  Rng rng(1);
  std::vector<float> rows(static_cast<size_t>(kChunk) * kKvHeads * kHeadDim);
  for (float& x : rows) x = static_cast<float>(rng.normal());
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  const auto step = [&](int64_t a, int64_t b, int chunk) {
    cache.begin_step(s, std::span<const int32_t>(tokens).subspan(a, b - a), chunk);
    for (int64_t at = a; at < b; at += kChunk) {
      const int len = static_cast<int>(std::min<int64_t>(kChunk, b - at));
      for (int l = 0; l < c.n_layers; ++l) cache.append(s, l, rows.data(), rows.data(), len);
    }
    cache.commit_step(s);
  };
  for (int64_t t = 0; t < from; ++t) step(t, t + 1, kChunk);
  step(from, n, kChunk);
}

TEST(PlanAndCache, AgreeOnAGemma3ShapedModelAtSixteenWindows) {
  for (const char* spec : {"k=f16,v=f16", "k=q8,v=q4"}) {
    SCOPED_TRACE(spec);
    const format::KVPolicy policy = format::KVPolicy::parse(spec);
    const KvFootprint fp = kv_footprint(gemma3_shaped(), policy, kPage, kChunk);
    const cache::PageLayout layout = cache::page_layout(cache_config(policy, 1));
    ASSERT_EQ(fp.layout.page_bytes, layout.page_bytes);
    ASSERT_EQ(fp.layout.staging_bytes, layout.staging_bytes);
    ASSERT_EQ(fp.layout.groups.size(), 6u);  // 2 global layers: one full group, five sliding
    const uint64_t pages = cache::sequence_pages(cache_config(policy, 1), kContext, kChunk);
    // The planner's bytes for one session are the cache's pages for it plus its f32 tail.
    ASSERT_EQ(fp.session_bytes(kContext), pages * layout.page_bytes + layout.staging_bytes);
    // Sliding groups hold far less than the context: the saving the planner promises is real
    // (a third of what full attention in every layer would take).
    const uint64_t full_attention = 6 * static_cast<uint64_t>(kContext / kPage);
    EXPECT_LT(pages * 3, full_attention);

    // The order that needs most: decode to where a sliding group holds most, then a long prompt.
    const size_t g = static_cast<size_t>(layout.layer_group[0]);
    int64_t worst = 0;
    for (int64_t n0 = 0; n0 <= kContext; ++n0) {
      if (layout.step_pages(g, n0, kContext, kChunk) >
          layout.step_pages(g, worst, kContext, kChunk))
        worst = n0;
    }
    cache::Cache cache(cache_config(policy, static_cast<uint32_t>(pages)));
    fill(cache, worst, kContext);
    const cache::Residency r = cache.residency();
    EXPECT_EQ(r.reserved.bytes + r.staging_bytes, fp.session_bytes(kContext));
    EXPECT_EQ(r.peak.pages, pages);
    EXPECT_LE(r.active.bytes + r.staging_bytes, fp.session_bytes(kContext));
    // A prompt from the start, or decoding all the way (once), stays within the figure too.
    for (int64_t from : {int64_t{0}, spec[2] == 'f' ? kContext : 0}) {
      cache::Cache other(cache_config(policy, static_cast<uint32_t>(pages)));
      fill(other, from, kContext);
      EXPECT_LE(other.residency().peak.pages, pages) << from;
    }
    // One page fewer is not enough.
    cache::Cache small(cache_config(policy, static_cast<uint32_t>(pages - 1)));
    EXPECT_EQ(testing::error_of([&] { fill(small, worst, kContext); }).rfind("kv cache full", 0),
              0u);
  }
}

}  // namespace
}  // namespace kvpack::plan
