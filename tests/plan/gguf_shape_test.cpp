// Model shapes read from GGUF metadata: the shared stories260K file and synthetic files written
// with GgufWriter in each architecture's key conventions.
#include "plan/gguf_shape.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>

#include "base/error.h"
#include "model/gguf_writer.h"
#include "shared_data.h"

namespace kvpack::plan {
namespace {

using model::GgmlType;
using model::GgufType;
using model::GgufWriter;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ModelShape shape_of(const GgufWriter& w, std::optional<double> bits = std::nullopt) {
  const std::vector<uint8_t> bytes = w.bytes();
  return gguf_shape(model::GgufFile::parse(bytes, "synthetic.gguf"), bits);
}

// A Gemma-3-like file: 12 layers, 16 query heads, per-layer KV heads, head dim 256, window 1024.
GgufWriter gemma3(int layers = 12) {
  GgufWriter w;
  w.set("general.architecture", model::gguf_string("gemma3"))
      .set("general.name", model::gguf_string("tiny-gemma3"))
      .set("gemma3.block_count", model::gguf_uint(GgufType::u32, layers))
      .set("gemma3.context_length", model::gguf_uint(GgufType::u32, 131072))
      .set("gemma3.embedding_length", model::gguf_uint(GgufType::u32, 1024))
      .set("gemma3.attention.head_count", model::gguf_uint(GgufType::u32, 16))
      .set("gemma3.attention.head_count_kv", model::gguf_uint(GgufType::u32, 8))
      .set("gemma3.attention.key_length", model::gguf_uint(GgufType::u32, 256))
      .set("gemma3.attention.value_length", model::gguf_uint(GgufType::u32, 256))
      .set("gemma3.attention.sliding_window", model::gguf_uint(GgufType::u32, 1024));
  w.add_zero_tensor("token_embd.weight", {256, 64}, GgmlType::Q8_0);
  return w;
}

TEST(GgufShape, ReadsStories260K) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const ModelShape m = gguf_shape(path.string());
  EXPECT_EQ(m.arch, "llama");
  EXPECT_EQ(m.n_layers(), 5);
  EXPECT_EQ(m.kv_layers(), 5);
  EXPECT_EQ(m.sliding_layers(), 0);
  for (const auto& l : m.layers) {
    EXPECT_EQ(l.q_heads, 8);
    EXPECT_EQ(l.kv_heads, 4);
  }
  EXPECT_EQ(m.head_dim_k, 8);  // embedding_length 64 / 8 heads
  EXPECT_EQ(m.head_dim_v, 8);
  EXPECT_EQ(m.weight_bytes, 292800u * 4);  // all F32 tensors
  EXPECT_EQ(m.params, 292800.0);
  EXPECT_EQ(m.native_context, m.max_context);
  // f16: 5 layers x 4 heads x 8 dims x 2 x 2 bytes.
  EXPECT_EQ(kv_footprint(m, format::KVPolicy()).bytes_per_token_full(), 5 * 4 * 8 * 2 * 2);
  // --weights-bits replaces the tensor sizes with params x bits.
  EXPECT_EQ(gguf_shape(path.string(), 4.0).weight_bytes, 292800u / 2);
}

TEST(GgufShape, Gemma3DefaultPatternSlidesFiveOfSix) {
  const ModelShape m = shape_of(gemma3());
  EXPECT_EQ(m.name, "tiny-gemma3");
  EXPECT_EQ(m.window, 1024);
  EXPECT_EQ(m.head_dim_k, 256);
  EXPECT_EQ(m.sliding_layers(), 10);
  EXPECT_FALSE(m.layers[5].sliding);
  EXPECT_FALSE(m.layers[11].sliding);
  EXPECT_TRUE(m.layers[0].sliding);
  EXPECT_EQ(m.weight_bytes, 256u * 64 / 32 * 34);
}

TEST(GgufShape, SlidingPatternFromMetadata) {
  GgufWriter period = gemma3(8);
  period.set("gemma3.attention.sliding_window_pattern", model::gguf_uint(GgufType::u32, 4));
  const ModelShape p = shape_of(period);
  EXPECT_EQ(p.sliding_layers(), 6);  // layers 3 and 7 are global
  EXPECT_FALSE(p.layers[3].sliding);
  EXPECT_FALSE(p.layers[7].sliding);

  GgufWriter per_layer = gemma3(4);
  per_layer.set("gemma3.attention.sliding_window_pattern",
                model::gguf_int_array(GgufType::boolean, {1, 0, 0, 1}));
  const ModelShape a = shape_of(per_layer);
  EXPECT_EQ(a.sliding_layers(), 2);
  EXPECT_TRUE(a.layers[0].sliding);
  EXPECT_FALSE(a.layers[1].sliding);
  EXPECT_TRUE(a.layers[3].sliding);

  per_layer.set("gemma3.attention.sliding_window_pattern",
                model::gguf_int_array(GgufType::boolean, {1, 0}));
  EXPECT_NE(error_of([&] { shape_of(per_layer); }).find("expected one per layer (4)"),
            std::string::npos);
}

TEST(GgufShape, PerLayerKvHeadsAndDefaults) {
  GgufWriter w = gemma3(3);
  w.set("gemma3.attention.head_count_kv", model::gguf_int_array(GgufType::i32, {8, 0, 4}));
  const ModelShape m = shape_of(w);
  EXPECT_EQ(m.layers[0].kv_heads, 8);
  EXPECT_EQ(m.layers[1].kv_heads, 0);
  EXPECT_EQ(m.layers[2].kv_heads, 4);
  EXPECT_EQ(m.kv_layers(), 2);
  EXPECT_EQ(m.kv_heads_text(), "4-8");
  // Without head_count_kv, every query head has K/V (multi-head attention).
  GgufWriter mha;
  mha.set("general.architecture", model::gguf_string("llama"))
      .set("llama.block_count", model::gguf_uint(GgufType::u32, 2))
      .set("llama.context_length", model::gguf_uint(GgufType::u32, 2048))
      .set("llama.embedding_length", model::gguf_uint(GgufType::u32, 256))
      .set("llama.attention.head_count", model::gguf_uint(GgufType::u32, 4));
  mha.add_zero_tensor("w", {32}, GgmlType::F32);
  const ModelShape h = shape_of(mha);
  EXPECT_EQ(h.layers[1].kv_heads, 4);
  EXPECT_EQ(h.head_dim_k, 64);
  EXPECT_EQ(h.head_dim_v, 64);
  EXPECT_EQ(h.name, "synthetic.gguf");  // no general.name: the file name
}

TEST(GgufShape, YarnScalingExtendsTheSupportedContext) {
  GgufWriter w;
  w.set("general.architecture", model::gguf_string("qwen2"))
      .set("qwen2.block_count", model::gguf_uint(GgufType::u32, 28))
      .set("qwen2.context_length", model::gguf_uint(GgufType::u32, 32768))
      .set("qwen2.embedding_length", model::gguf_uint(GgufType::u32, 3584))
      .set("qwen2.attention.head_count", model::gguf_uint(GgufType::u32, 28))
      .set("qwen2.attention.head_count_kv", model::gguf_uint(GgufType::u32, 4))
      .set("qwen2.rope.scaling.type", model::gguf_string("yarn"))
      .set("qwen2.rope.scaling.factor", model::gguf_float(GgufType::f32, 4.0))
      .set("qwen2.rope.scaling.original_context_length", model::gguf_uint(GgufType::u32, 32768));
  w.add_zero_tensor("w", {32}, GgmlType::F32);
  const ModelShape m = shape_of(w);
  EXPECT_EQ(m.head_dim_k, 128);
  EXPECT_EQ(m.native_context, 32768);
  EXPECT_EQ(m.max_context, 131072);
  EXPECT_EQ(kv_footprint(m, format::KVPolicy()).bytes_per_token_full(), 28 * 4 * 128 * 2 * 2);
}

TEST(GgufShape, MissingOrBadMetadataIsNamed) {
  GgufWriter w = gemma3();
  w.set("gemma3.attention.sliding_window", model::gguf_int(GgufType::i32, -1));
  EXPECT_NE(error_of([&] {
              shape_of(w);
            }).find("synthetic.gguf: metadata 'gemma3.attention.sliding_window' is -1"),
            std::string::npos);
  GgufWriter no_layers;
  no_layers.set("general.architecture", model::gguf_string("qwen3"));
  EXPECT_NE(error_of([&] { shape_of(no_layers); }).find("missing metadata 'qwen3.block_count'"),
            std::string::npos);
  GgufWriter vocab_only;
  EXPECT_NE(error_of([&] { shape_of(vocab_only); }).find("general.architecture"),
            std::string::npos);
  GgufWriter no_tensors;
  no_tensors.set("general.architecture", model::gguf_string("llama"))
      .set("llama.block_count", model::gguf_uint(GgufType::u32, 1))
      .set("llama.context_length", model::gguf_uint(GgufType::u32, 64))
      .set("llama.attention.head_count", model::gguf_uint(GgufType::u32, 1))
      .set("llama.attention.key_length", model::gguf_uint(GgufType::u32, 8));
  EXPECT_NE(error_of([&] { shape_of(no_tensors); }).find("has no tensors"), std::string::npos);
  EXPECT_EQ(shape_of(no_tensors, 4.85).weight_bytes, 0u);  // sized by bits: zero params
}

TEST(GgufShape, TruncatedAndCorruptFilesAreCleanErrors) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> full{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
  const auto tmp = std::filesystem::temp_directory_path() / "kvpack_truncated.gguf";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(full.data()), 5000);  // inside the vocabulary
  }
  const std::string truncated = error_of([&] { gguf_shape(tmp.string()); });
  EXPECT_NE(truncated.find(tmp.string()), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("truncated"), std::string::npos) << truncated;
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write("GGUF\x07\0\0\0", 8);
  }
  EXPECT_NE(error_of([&] { gguf_shape(tmp.string()); }).find("version 7 is not supported"),
            std::string::npos);
  std::filesystem::remove(tmp);
}

}  // namespace
}  // namespace kvpack::plan
