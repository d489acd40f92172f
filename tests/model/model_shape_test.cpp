// Model shapes from GGUF metadata in each architecture's key conventions: synthetic files written
// with GgufWriter, supported by the engine or not, known to kvpack or not.
#include "model/model_shape.h"

#include <gtest/gtest.h>

#include "error_of.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace kvpack::model {
namespace {

using kvpack::testing::error_of;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

ModelShape shape_of(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.bytes();
  return read_model_shape(GgufFile::parse(bytes, "synthetic.gguf"));
}

// A Gemma-3-like file: 16 query heads, 8 KV heads, head dim 256, window 1024.
GgufWriter gemma3(int layers = 12) {
  GgufWriter w;
  w.set("general.architecture", gguf_string("gemma3"))
      .set("general.name", gguf_string("tiny-gemma3"))
      .set("gemma3.block_count", gguf_uint(GgufType::u32, layers))
      .set("gemma3.context_length", gguf_uint(GgufType::u32, 131072))
      .set("gemma3.embedding_length", gguf_uint(GgufType::u32, 1024))
      .set("gemma3.attention.head_count", gguf_uint(GgufType::u32, 16))
      .set("gemma3.attention.head_count_kv", gguf_uint(GgufType::u32, 8))
      .set("gemma3.attention.key_length", gguf_uint(GgufType::u32, 256))
      .set("gemma3.attention.value_length", gguf_uint(GgufType::u32, 256))
      .set("gemma3.attention.sliding_window", gguf_uint(GgufType::u32, 1024));
  return w;
}

// The fewest keys a shape needs, for an architecture of any name.
GgufWriter minimal(const std::string& arch, int layers = 2) {
  GgufWriter w;
  w.set("general.architecture", gguf_string(arch))
      .set(arch + ".block_count", gguf_uint(GgufType::u32, layers))
      .set(arch + ".context_length", gguf_uint(GgufType::u32, 2048))
      .set(arch + ".embedding_length", gguf_uint(GgufType::u32, 256))
      .set(arch + ".attention.head_count", gguf_uint(GgufType::u32, 4));
  return w;
}

TEST(ModelShape, Gemma3DefaultPatternSlidesFiveOfSix) {
  const ModelShape m = shape_of(gemma3());
  EXPECT_EQ(m.arch, "gemma3");
  ASSERT_NE(m.traits, nullptr);
  EXPECT_EQ(m.traits->name, "gemma3");  // a row the engine does not run yet is still read
  EXPECT_EQ(m.name, "tiny-gemma3");
  EXPECT_EQ(m.window, 1024);
  EXPECT_EQ(m.head_dim_k, 256);
  EXPECT_EQ(m.head_dim_v, 256);
  EXPECT_EQ(m.n_embd, 1024);
  EXPECT_EQ(sliding_layers(m.layers), 10);
  EXPECT_FALSE(m.layers[5].sliding);
  EXPECT_FALSE(m.layers[11].sliding);
  EXPECT_TRUE(m.layers[0].sliding);
  EXPECT_EQ(m.native_context, 131072);
  EXPECT_EQ(m.max_context, 131072);
}

TEST(ModelShape, DefaultSlidingPeriodComesFromTheArchitectureTable) {
  GgufWriter g2 = minimal("gemma2", 4);
  g2.set("gemma2.attention.sliding_window", gguf_uint(GgufType::u32, 4096));
  const ModelShape m = shape_of(g2);
  EXPECT_EQ(m.traits->swa_period, 2);
  EXPECT_TRUE(m.layers[0].sliding);
  EXPECT_FALSE(m.layers[1].sliding);
  EXPECT_EQ(sliding_layers(m.layers), 2);
  EXPECT_EQ(m.window, 4096);
  // Llama's row has no period: a sliding_window key alone leaves every layer full.
  GgufWriter llama = minimal("llama");
  llama.set("llama.attention.sliding_window", gguf_uint(GgufType::u32, 4096));
  EXPECT_EQ(sliding_layers(shape_of(llama).layers), 0);
  EXPECT_EQ(shape_of(llama).window, 0);
}

TEST(ModelShape, SlidingPatternFromMetadata) {
  GgufWriter period = gemma3(8);
  period.set("gemma3.attention.sliding_window_pattern", gguf_uint(GgufType::u32, 4));
  const ModelShape p = shape_of(period);
  EXPECT_EQ(sliding_layers(p.layers), 6);  // layers 3 and 7 are global
  EXPECT_FALSE(p.layers[3].sliding);
  EXPECT_FALSE(p.layers[7].sliding);

  GgufWriter per_layer = gemma3(4);
  per_layer.set("gemma3.attention.sliding_window_pattern",
                gguf_int_array(GgufType::boolean, {1, 0, 0, 1}));
  const ModelShape a = shape_of(per_layer);
  EXPECT_EQ(sliding_layers(a.layers), 2);
  EXPECT_TRUE(a.layers[0].sliding);
  EXPECT_FALSE(a.layers[1].sliding);
  EXPECT_TRUE(a.layers[3].sliding);

  per_layer.set("gemma3.attention.sliding_window_pattern",
                gguf_int_array(GgufType::boolean, {1, 0}));
  EXPECT_HAS(error_of([&] { shape_of(per_layer); }),
             "synthetic.gguf: metadata 'gemma3.attention.sliding_window_pattern' has 2 entries, "
             "expected one per layer (4)");
}

TEST(ModelShape, PerLayerHeadsAndDefaults) {
  GgufWriter w = gemma3(3);
  w.set("gemma3.attention.head_count_kv", gguf_int_array(GgufType::i32, {8, 0, 4}));
  const ModelShape m = shape_of(w);
  EXPECT_EQ(m.layers[0], (LayerShape{16, 8, true}));
  EXPECT_EQ(m.layers[1], (LayerShape{16, 0, true}));
  EXPECT_EQ(m.layers[2], (LayerShape{16, 4, true}));
  EXPECT_EQ(kv_layers(m.layers), 2);
  EXPECT_EQ(sliding_layers(m.layers), 2);  // layer 1 slides too, but holds no K/V

  // Without head_count_kv, every query head has K/V (multi-head attention); without key_length
  // the head dim is embedding_length / head_count; without general.name, the file name.
  const ModelShape h = shape_of(minimal("llama"));
  EXPECT_EQ(h.layers[1].kv_heads, 4);
  EXPECT_EQ(h.head_dim_k, 64);
  EXPECT_EQ(h.head_dim_v, 64);
  EXPECT_EQ(h.name, "synthetic.gguf");
}

TEST(ModelShape, UnknownArchitecturesAreReadFromTheirKeys) {
  GgufWriter w = minimal("qwen3moe", 3);
  w.set("qwen3moe.attention.head_count_kv", gguf_uint(GgufType::u32, 2))
      .set("qwen3moe.attention.key_length", gguf_uint(GgufType::u32, 128));
  const ModelShape m = shape_of(w);
  EXPECT_EQ(m.traits, nullptr);
  EXPECT_EQ(m.n_layers(), 3);
  EXPECT_EQ(m.layers[2], (LayerShape{4, 2, false}));
  EXPECT_EQ(m.head_dim_k, 128);
  EXPECT_EQ(m.head_dim_v, 128);
}

TEST(ModelShape, RopeScaling) {
  GgufWriter w = minimal("qwen2");
  w.set("qwen2.context_length", gguf_uint(GgufType::u32, 32768))
      .set("qwen2.rope.scaling.type", gguf_string("yarn"))
      .set("qwen2.rope.scaling.factor", gguf_float(GgufType::f32, 4.0))
      .set("qwen2.rope.scaling.original_context_length", gguf_uint(GgufType::u32, 32768));
  const ModelShape y = shape_of(w);
  EXPECT_EQ(y.rope_scaling, "yarn");
  EXPECT_EQ(y.rope_factor, 4.0);
  EXPECT_EQ(y.native_context, 32768);
  EXPECT_EQ(y.max_context, 131072);  // YaRN stretches the original context by its factor

  // Linear scaling (also from the older rope.scale_linear key) keeps the trained context.
  GgufWriter linear = minimal("llama");
  linear.set("llama.rope.scale_linear", gguf_float(GgufType::f32, 2.0));
  const ModelShape l = shape_of(linear);
  EXPECT_EQ(l.rope_scaling, "linear");
  EXPECT_EQ(l.rope_factor, 2.0);
  EXPECT_EQ(l.max_context, 2048);
  EXPECT_EQ(l.rope_original_context, 2048);  // default: context_length

  linear.set("llama.rope.scaling.factor", gguf_float(GgufType::f32, 0.0));  // llama.cpp's unset
  linear.set("llama.rope.scaling.type", gguf_string("none"));
  EXPECT_EQ(shape_of(linear).rope_factor, 1.0);
  linear.set("llama.rope.scaling.factor", gguf_float(GgufType::f32, 5000.0));
  EXPECT_HAS(error_of([&] { shape_of(linear); }),
             "metadata 'llama.rope.scaling.factor' is 5000, expected 1 to 1024");
}

TEST(ModelShape, MissingOrBadMetadataIsNamed) {
  GgufWriter w = gemma3();
  w.set("gemma3.attention.sliding_window", gguf_int(GgufType::i32, -1));
  EXPECT_HAS(error_of([&] { shape_of(w); }),
             "synthetic.gguf: metadata 'gemma3.attention.sliding_window' is -1, expected 1 to");
  GgufWriter no_layers;
  no_layers.set("general.architecture", gguf_string("qwen3"));
  EXPECT_HAS(error_of([&] { shape_of(no_layers); }),
             "synthetic.gguf: missing metadata 'qwen3.block_count'");
  EXPECT_HAS(error_of([&] { shape_of(GgufWriter()); }), "general.architecture");

  GgufWriter no_heads = minimal("llama");
  no_heads.set("llama.attention.head_count_kv", gguf_uint(GgufType::u32, 0));
  EXPECT_HAS(error_of([&] { shape_of(no_heads); }),
             "no layer has K/V heads (llama.attention.head_count_kv)");
  GgufWriter odd = minimal("llama");
  odd.set("llama.attention.head_count", gguf_uint(GgufType::u32, 3));
  EXPECT_HAS(error_of([&] { shape_of(odd); }),
             "cannot derive the head dim: llama.embedding_length 256 over 3 heads");
  GgufWriter no_dims;
  no_dims.set("general.architecture", gguf_string("llama"))
      .set("llama.block_count", gguf_uint(GgufType::u32, 1))
      .set("llama.context_length", gguf_uint(GgufType::u32, 64))
      .set("llama.attention.head_count", gguf_uint(GgufType::u32, 1));
  EXPECT_HAS(error_of([&] { shape_of(no_dims); }), "missing metadata 'llama.embedding_length'");
  no_dims.set("llama.attention.head_count", gguf_int_array(GgufType::i32, {70000}));
  EXPECT_HAS(error_of([&] { shape_of(no_dims); }),
             "metadata 'llama.attention.head_count' is 70000, expected 0 to 65536");
}

}  // namespace
}  // namespace kvpack::model
