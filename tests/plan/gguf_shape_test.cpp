// The planner's model shapes from GGUF files: the shared stories260K file and synthetic files
// written with GgufWriter. model::read_model_spec's own tests (tests/model/model_spec_test.cpp)
// cover the keys; these cover what the planner adds (weights) and that every field arrives.
#include "plan/gguf_shape.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cli_run.h"
#include "error_of.h"
#include "model/gguf_writer.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::plan {
namespace {

using kvpack::testing::error_of;
using model::GgmlType;
using model::GgufType;
using model::GgufWriter;

ModelShape shape_of(const GgufWriter& w, std::optional<double> bits = std::nullopt) {
  const std::vector<uint8_t> bytes = w.bytes();
  return gguf_shape(model::GgufFile::parse(bytes, "synthetic.gguf"), bits);
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

TEST(GgufShape, CarriesEveryFieldOfTheModelShape) {
  // Gemma-3-like: per-layer KV heads, the architecture's sliding period, a window.
  GgufWriter w;
  w.set("general.architecture", model::gguf_string("gemma3"))
      .set("general.name", model::gguf_string("tiny-gemma3"))
      .set("gemma3.block_count", model::gguf_uint(GgufType::u32, 6))
      .set("gemma3.context_length", model::gguf_uint(GgufType::u32, 131072))
      .set("gemma3.attention.head_count", model::gguf_uint(GgufType::u32, 16))
      .set("gemma3.attention.head_count_kv",
           model::gguf_int_array(GgufType::i32, {8, 8, 4, 4, 0, 8}))
      .set("gemma3.attention.key_length", model::gguf_uint(GgufType::u32, 256))
      .set("gemma3.attention.value_length", model::gguf_uint(GgufType::u32, 128))
      .set("gemma3.attention.sliding_window", model::gguf_uint(GgufType::u32, 1024));
  w.add_zero_tensor("token_embd.weight", {256, 64}, GgmlType::Q8_0);
  const ModelShape m = shape_of(w);
  EXPECT_EQ(m.name, "tiny-gemma3");
  EXPECT_EQ(m.source, "synthetic.gguf");
  EXPECT_EQ(m.arch, "gemma3");
  EXPECT_EQ(m.n_layers(), 6);
  EXPECT_EQ(m.kv_layers(), 5);
  EXPECT_EQ(m.sliding_layers(), 4);  // layers 0-4 slide, layer 4 holds no K/V
  EXPECT_FALSE(m.layers[5].sliding());
  EXPECT_EQ(m.kv_heads_text(), "4-8");
  EXPECT_EQ(m.q_heads_text(), "16");
  EXPECT_EQ(m.head_dim_k, 256);
  EXPECT_EQ(m.head_dim_v, 128);
  EXPECT_EQ(m.window(), 1024);
  EXPECT_EQ(m.native_context, 131072);
  EXPECT_EQ(m.max_context, 131072);
  EXPECT_EQ(m.weight_bytes, 256u * 64 / 32 * 34);
  EXPECT_EQ(m.params, 256.0 * 64);
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

TEST(GgufShape, WeightsFromTensorsOrBits) {
  GgufWriter no_tensors;
  no_tensors.set("general.architecture", model::gguf_string("llama"))
      .set("llama.block_count", model::gguf_uint(GgufType::u32, 1))
      .set("llama.context_length", model::gguf_uint(GgufType::u32, 64))
      .set("llama.attention.head_count", model::gguf_uint(GgufType::u32, 1))
      .set("llama.attention.key_length", model::gguf_uint(GgufType::u32, 8));
  EXPECT_NE(error_of([&] { shape_of(no_tensors); }).find("has no tensors"), std::string::npos);
  EXPECT_EQ(shape_of(no_tensors, 4.85).weight_bytes, 0u);  // sized by bits: zero params
  EXPECT_NE(error_of([&] { shape_of(no_tensors, 65); }).find("invalid weight bits 65"),
            std::string::npos);
  // Metadata errors come from the shape reader, naming the file and the key.
  no_tensors.set("llama.block_count", model::gguf_uint(GgufType::u32, 0));
  EXPECT_NE(error_of([&] {
              shape_of(no_tensors, 4.85);
            }).find("synthetic.gguf: metadata 'llama.block_count' is 0, expected 1 to 4096"),
            std::string::npos);
}

TEST(GgufShape, TruncatedAndCorruptFilesAreCleanErrors) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const std::vector<uint8_t> full = kvpack::testing::read_bytes(path);
  const std::filesystem::path tmp = kvpack::testing::temp_path("truncated.gguf");
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
