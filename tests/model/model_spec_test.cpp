// Model descriptions from GGUF metadata in each architecture's key conventions: synthetic files
// written with GgufWriter, supported by the engine or not, known to kvpack or not.
#include "model/model_spec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "error_of.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace kvpack::model {
namespace {

using kvpack::testing::error_of;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

ModelSpec shape_of(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.bytes();
  return read_model_spec(GgufFile::parse(bytes, "synthetic.gguf"));
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

TEST(ModelSpec, Gemma3DefaultPatternSlidesFiveOfSix) {
  const ModelSpec m = shape_of(gemma3());
  EXPECT_EQ(m.arch, "gemma3");
  ASSERT_NE(m.traits, nullptr);
  EXPECT_EQ(m.traits->name, "gemma3");  // a row the engine does not run yet is still read
  EXPECT_EQ(m.name, "tiny-gemma3");
  EXPECT_EQ(m.window(), 1024);
  EXPECT_EQ(m.head_dim_k, 256);
  EXPECT_EQ(m.head_dim_v, 256);
  EXPECT_EQ(m.n_embd, 1024);
  EXPECT_EQ(m.sliding_layers(), 10);
  EXPECT_FALSE(m.layers[5].sliding());
  EXPECT_FALSE(m.layers[11].sliding());
  EXPECT_TRUE(m.layers[0].sliding());
  EXPECT_EQ(m.native_context, 131072);
  EXPECT_EQ(m.max_context, 131072);
}

TEST(ModelSpec, DefaultSlidingPeriodComesFromTheArchitectureTable) {
  GgufWriter g2 = minimal("gemma2", 4);
  g2.set("gemma2.attention.sliding_window", gguf_uint(GgufType::u32, 4096));
  const ModelSpec m = shape_of(g2);
  EXPECT_EQ(m.traits->swa_period, 2);
  EXPECT_TRUE(m.layers[0].sliding());
  EXPECT_FALSE(m.layers[1].sliding());
  EXPECT_EQ(m.sliding_layers(), 2);
  EXPECT_EQ(m.window(), 4096);
  // Llama's row has no period: a sliding_window key alone leaves every layer full.
  GgufWriter llama = minimal("llama");
  llama.set("llama.attention.sliding_window", gguf_uint(GgufType::u32, 4096));
  EXPECT_EQ(shape_of(llama).sliding_layers(), 0);
  EXPECT_EQ(shape_of(llama).window(), 0);
}

TEST(ModelSpec, SlidingPatternFromMetadata) {
  GgufWriter period = gemma3(8);
  period.set("gemma3.attention.sliding_window_pattern", gguf_uint(GgufType::u32, 4));
  const ModelSpec p = shape_of(period);
  EXPECT_EQ(p.sliding_layers(), 6);  // layers 3 and 7 are global
  EXPECT_FALSE(p.layers[3].sliding());
  EXPECT_FALSE(p.layers[7].sliding());

  GgufWriter per_layer = gemma3(4);
  per_layer.set("gemma3.attention.sliding_window_pattern",
                gguf_int_array(GgufType::boolean, {1, 0, 0, 1}));
  const ModelSpec a = shape_of(per_layer);
  EXPECT_EQ(a.sliding_layers(), 2);
  EXPECT_TRUE(a.layers[0].sliding());
  EXPECT_FALSE(a.layers[1].sliding());
  EXPECT_TRUE(a.layers[3].sliding());

  per_layer.set("gemma3.attention.sliding_window_pattern",
                gguf_int_array(GgufType::boolean, {1, 0}));
  EXPECT_HAS(error_of([&] { shape_of(per_layer); }),
             "synthetic.gguf: metadata 'gemma3.attention.sliding_window_pattern' has 2 entries, "
             "expected one per layer (4)");
}

TEST(ModelSpec, PerLayerHeadsAndDefaults) {
  GgufWriter w = gemma3(3);
  w.set("gemma3.attention.head_count_kv", gguf_int_array(GgufType::i32, {8, 0, 4}));
  const ModelSpec m = shape_of(w);
  const auto heads = [&](size_t l) {
    return std::tuple(m.layers[l].q_heads, m.layers[l].kv_heads, m.layers[l].window);
  };
  EXPECT_EQ(heads(0), std::tuple(16, 8, 1024));
  EXPECT_EQ(heads(1), std::tuple(16, 0, 1024));
  EXPECT_EQ(heads(2), std::tuple(16, 4, 1024));
  EXPECT_EQ(m.kv_layers(), 2);
  EXPECT_EQ(m.sliding_layers(), 2);  // layer 1 slides too, but holds no K/V

  // Without head_count_kv, every query head has K/V (multi-head attention); without key_length
  // the head dim is embedding_length / head_count; without general.name, the file name.
  const ModelSpec h = shape_of(minimal("llama"));
  EXPECT_EQ(h.layers[1].kv_heads, 4);
  EXPECT_EQ(h.head_dim_k, 64);
  EXPECT_EQ(h.head_dim_v, 64);
  EXPECT_EQ(h.name, "synthetic.gguf");
}

TEST(ModelSpec, UnknownArchitecturesAreReadFromTheirKeys) {
  GgufWriter w = minimal("olmo9", 3);
  w.set("olmo9.attention.head_count_kv", gguf_uint(GgufType::u32, 2))
      .set("olmo9.attention.key_length", gguf_uint(GgufType::u32, 128));
  const ModelSpec m = shape_of(w);
  EXPECT_EQ(m.traits, nullptr);
  EXPECT_EQ(m.n_layers(), 3);
  EXPECT_EQ(m.layers[2].q_heads, 4);
  EXPECT_EQ(m.layers[2].kv_heads, 2);
  EXPECT_FALSE(m.layers[2].sliding());
  EXPECT_EQ(m.head_dim_k, 128);
  EXPECT_EQ(m.head_dim_v, 128);
}

TEST(ModelSpec, RopeScaling) {
  GgufWriter w = minimal("qwen2");
  w.set("qwen2.context_length", gguf_uint(GgufType::u32, 32768))
      .set("qwen2.rope.scaling.type", gguf_string("yarn"))
      .set("qwen2.rope.scaling.factor", gguf_float(GgufType::f32, 4.0))
      .set("qwen2.rope.scaling.original_context_length", gguf_uint(GgufType::u32, 32768));
  const ModelSpec y = shape_of(w);
  EXPECT_EQ(y.rope_scaling, "yarn");
  EXPECT_EQ(y.rope_factor, 4.0);
  EXPECT_EQ(y.native_context, 32768);
  EXPECT_EQ(y.max_context, 131072);  // YaRN stretches the original context by its factor

  // Linear scaling (also from the older rope.scale_linear key) keeps the trained context.
  GgufWriter linear = minimal("llama");
  linear.set("llama.rope.scale_linear", gguf_float(GgufType::f32, 2.0));
  const ModelSpec l = shape_of(linear);
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

// Gemma 3: sliding layers rotate with base 10000 unless rope.freq_base_swa says otherwise, and
// only global layers take the context scaling; queries of the 62-layer (27B) model are scaled by
// 1/sqrt(n_embd / n_head); embeddings by sqrt(n_embd); no softcaps.
TEST(ModelSpec, Gemma3RopePerLayerKind) {
  GgufWriter w = gemma3(6);
  w.set("gemma3.rope.freq_base", gguf_float(GgufType::f32, 1e6))
      .set("gemma3.rope.scaling.type", gguf_string("linear"))
      .set("gemma3.rope.scaling.factor", gguf_float(GgufType::f32, 8.0));
  ModelSpec m = shape_of(w);
  const LayerSpec& local = m.layers[0];
  const LayerSpec& global = m.layers[5];
  EXPECT_EQ(local.window, 1024);
  EXPECT_EQ(global.window, 0);
  EXPECT_EQ(global.rope.freq_base, 1e6);
  EXPECT_EQ(global.rope.scaling, RopeScaling::linear);
  EXPECT_EQ(global.rope.scale_factor, 8.0);
  EXPECT_EQ(local.rope.freq_base, 10000.0);
  EXPECT_EQ(local.rope.scaling, RopeScaling::none);
  EXPECT_EQ(local.rope.ordering, RopeOrdering::neox);
  EXPECT_EQ(local.att_scale, 0.0f);  // 1/sqrt(head_dim): not the 27B rule
  EXPECT_EQ(local.att_softcap, 0.0f);
  EXPECT_EQ(m.final_softcap, 0.0f);
  EXPECT_EQ(m.embed_scale, std::sqrt(1024.0f));

  w.set("gemma3.rope.freq_base_swa", gguf_float(GgufType::f32, 5e4));
  EXPECT_EQ(shape_of(w).layers[0].rope.freq_base, 5e4);

  GgufWriter big = gemma3(62);  // 1024 / 16 heads = 64, not the head dim 256
  EXPECT_FLOAT_EQ(shape_of(big).layers[3].att_scale, 1.0f / 8.0f);

  // Without attention.sliding_window, llama.cpp runs a Gemma 3 file with no sliding layer.
  GgufWriter no_window = minimal("gemma3", 6);
  EXPECT_EQ(shape_of(no_window).sliding_layers(), 0);
}

// Gemma 2: softcaps 50 and 30 unless the metadata gives others; window 4096 by default; every
// layer kind shares one RoPE, scaled alike.
TEST(ModelSpec, Gemma2SoftcapsAndDefaults) {
  GgufWriter w = minimal("gemma2", 4);
  ModelSpec m = shape_of(w);
  EXPECT_EQ(m.window(), 4096);
  EXPECT_EQ(m.layers[0].att_softcap, 50.0f);
  EXPECT_EQ(m.layers[1].att_softcap, 50.0f);
  EXPECT_EQ(m.final_softcap, 30.0f);
  EXPECT_EQ(m.layers[0].rope, m.layers[1].rope);
  w.set("gemma2.attn_logit_softcapping", gguf_float(GgufType::f32, 20.0))
      .set("gemma2.final_logit_softcapping", gguf_float(GgufType::f32, 10.0))
      .set("gemma2.attention.sliding_window", gguf_uint(GgufType::u32, 64));
  m = shape_of(w);
  EXPECT_EQ(m.layers[2].att_softcap, 20.0f);
  EXPECT_EQ(m.final_softcap, 10.0f);
  EXPECT_EQ(m.layers[2].window, 64);
  EXPECT_EQ(m.layers[3].window, 0);
  EXPECT_EQ(shape_of(minimal("llama")).layers[0].att_softcap, 0.0f);
  EXPECT_EQ(shape_of(minimal("llama")).layers[0].rope.ordering, RopeOrdering::interleaved);
}

TEST(ModelSpec, ExpertCounts) {
  GgufWriter w = minimal("qwen3moe");
  w.set("qwen3moe.expert_count", gguf_uint(GgufType::u32, 8))
      .set("qwen3moe.expert_used_count", gguf_uint(GgufType::u32, 2))
      .set("qwen3moe.feed_forward_length", gguf_uint(GgufType::u32, 512));
  ModelSpec m = shape_of(w);
  EXPECT_EQ(m.moe, (MoeSpec{8, 2, 256}));  // expert width defaults to n_ff / experts used
  w.set("qwen3moe.expert_feed_forward_length", gguf_uint(GgufType::u32, 128));
  m = shape_of(w);
  EXPECT_EQ(m.moe.n_ff_exp, 128);
  EXPECT_EQ(m.ffn_width(), 128);
  EXPECT_EQ(m.layers[0].rope.ordering, RopeOrdering::neox);
}

TEST(ModelSpec, MissingOrBadMetadataIsNamed) {
  GgufWriter w = gemma3();
  w.set("gemma3.attention.sliding_window", gguf_int(GgufType::i32, -1));
  EXPECT_HAS(error_of([&] { shape_of(w); }),
             "synthetic.gguf: metadata 'gemma3.attention.sliding_window' is -1, expected 0 to");
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
