// Model loading: configuration from metadata, tensors bound by name, and a clear error naming the
// file and the problem for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "cli_run.h"
#include "error_of.h"
#include "kvpack/model.h"
#include "model/synthetic_model.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

std::string temp_path(const std::string& name) {
  return kvpack::testing::temp_path("model_load_" + name + ".gguf");
}

std::string write(const GgufWriter& w, const std::string& name) {
  const std::string path = temp_path(name);
  w.write(path);
  return path;
}

// The message of the Error that loading `path` throws ("" when it loads).
std::string load_error(const std::string& path) {
  return kvpack::testing::error_of([&] { Model::load(path); });
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(ModelLoad, StoriesConfig) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const auto model = Model::load(path.string());
  const ModelSpec& hp = model->spec();
  EXPECT_EQ(hp.traits->name, "llama");
  EXPECT_EQ(hp.n_layers(), 5);
  EXPECT_EQ(hp.n_embd, 64);
  EXPECT_EQ(hp.n_heads(), 8);
  EXPECT_EQ(hp.n_kv_heads(), 4);
  EXPECT_EQ(hp.head_dim_k, 8);
  EXPECT_EQ(hp.head_dim_v, 8);
  EXPECT_EQ(hp.n_ff, 172);
  EXPECT_EQ(hp.n_vocab, 512);
  EXPECT_EQ(hp.n_ctx_train, 2048);
  EXPECT_FLOAT_EQ(hp.norm_eps, 1e-5f);
  EXPECT_EQ(hp.layers[0].rope.n_dims, 8);
  EXPECT_EQ(hp.layers[0].rope.freq_base, 10000.0);  // no key: the default
  EXPECT_EQ(hp.layers[0].rope.ordering, RopeOrdering::interleaved);
  EXPECT_FALSE(model->weights().tied_output);  // the converter wrote a copy
  EXPECT_EQ(model->weights().layers[4].ffn_down.name, "blk.4.ffn_down.weight");
  ASSERT_NE(model->tokenizer(), nullptr);
}

TEST(ModelLoad, TiedOutputAndRopeFreqs) {
  SyntheticModel m;
  m.tied_output = true;
  m.rope_freqs = true;
  const auto model = Model::load(write(synthetic_model(m), "tied"));
  EXPECT_TRUE(model->weights().tied_output);
  EXPECT_EQ(model->weights().output.data, model->weights().token_embd.data);
  EXPECT_EQ(model->spec().layers[0].rope.freq_factors.size(), static_cast<size_t>(m.head_dim / 2));
  EXPECT_EQ(model->tokenizer(), nullptr);  // tokenizer.ggml.model = "none"
}

TEST(ModelLoad, RopeScalingFromMetadata) {
  SyntheticModel m;
  GgufWriter w = synthetic_model(m);
  w.set("llama.rope.scaling.type", gguf_string("yarn"));
  w.set("llama.rope.scaling.factor", gguf_float(GgufType::f32, 4.0));
  w.set("llama.rope.scaling.original_context_length", gguf_uint(GgufType::u32, 512));
  const auto model = Model::load(write(w, "yarn"));
  EXPECT_EQ(model->spec().layers[0].rope.scaling, RopeScaling::yarn);
  EXPECT_EQ(model->spec().layers[0].rope.scale_factor, 4.0);
  EXPECT_EQ(model->spec().layers[0].rope.original_context, 512);

  w.set("llama.rope.scaling.type", gguf_string("longrope"));
  EXPECT_HAS(load_error(write(w, "longrope")), "RoPE scaling 'longrope'");
}

TEST(ModelLoad, VocabOnlyFileHasNoTensors) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  const std::string e = load_error(path.string());
  EXPECT_HAS(e, "ggml-vocab-llama-spm.gguf: has no tensors");
  EXPECT_HAS(e, "token_embd.weight");
}

TEST(ModelLoad, TruncatedFile) {
  const std::vector<uint8_t> bytes = synthetic_model(SyntheticModel{}).bytes();
  for (size_t keep : {size_t{20}, bytes.size() / 3, bytes.size() - 100}) {
    const std::string path = temp_path("truncated");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), keep);
    const std::string e = load_error(path);
    EXPECT_HAS(e, path);
    EXPECT_FALSE(e.empty()) << keep;
  }
}

TEST(ModelLoad, UnknownArchitecture) {
  GgufWriter w = synthetic_model(SyntheticModel{});
  w.set("general.architecture", gguf_string("mamba9"));
  EXPECT_HAS(load_error(write(w, "mamba9")),
             "unknown architecture 'mamba9' (supported: llama, qwen2, qwen3, qwen3moe, gemma2, "
             "gemma3)");
  // A known architecture whose tensors the file lacks: the first missing one is named.
  SyntheticModel qwen3;
  qwen3.arch = "qwen3";
  qwen3.omit = {"blk.0.attn_q_norm.weight"};
  EXPECT_HAS(load_error(write(synthetic_model(qwen3), "qwen3")),
             "missing tensor 'blk.0.attn_q_norm.weight'");
}

// The description takes per-layer counts (the planner sizes such models); the forward pass runs
// one head count for every layer, and sliding-window layers of any architecture.
TEST(ModelLoad, ShapesTheForwardPassCannotRunAreRefused) {
  GgufWriter w = synthetic_model(SyntheticModel{});  // 2 layers, 4 query heads, 2 KV heads
  w.set("llama.attention.head_count_kv", gguf_int_array(GgufType::i32, {2, 2}));
  w.set("llama.feed_forward_length", gguf_int_array(GgufType::u32, {96, 96}));
  EXPECT_EQ(Model::load(write(w, "equal_arrays"))->spec().n_kv_heads(), 2);

  w.set("llama.attention.head_count_kv", gguf_int_array(GgufType::i32, {2, 1}));
  EXPECT_HAS(load_error(write(w, "kv_differs")),
             "metadata 'llama.attention.head_count_kv' differs between layers, which kvpack does "
             "not support yet");
  w.set("llama.attention.head_count_kv", gguf_int_array(GgufType::i32, {2, 0}));
  EXPECT_HAS(load_error(write(w, "kv_zero")), "differs between layers");
  w.set("llama.attention.head_count_kv", gguf_uint(GgufType::u32, 3));
  EXPECT_HAS(load_error(write(w, "kv_group")), "4 query heads are not a multiple of 3 KV heads");
  w.set("llama.attention.head_count_kv", gguf_uint(GgufType::u32, 2));
  w.set("llama.feed_forward_length", gguf_int_array(GgufType::u32, {96, 64}));
  EXPECT_HAS(load_error(write(w, "ff_differs")),
             "metadata 'llama.feed_forward_length' differs between layers");
  w.set("llama.feed_forward_length", gguf_uint(GgufType::u32, 96));

  w.set("llama.attention.sliding_window_pattern", gguf_uint(GgufType::u32, 2));
  w.set("llama.attention.sliding_window", gguf_uint(GgufType::u32, 512));
  const auto sliding = Model::load(write(w, "sliding"));
  EXPECT_EQ(sliding->spec().layers[0].window, 512);
  EXPECT_EQ(sliding->spec().layers[1].window, 0);
}

// Parts of a file kvpack does not run are refused by name, not ignored.
TEST(ModelLoad, VisionTowerAndStrayTensorsAreRefused) {
  GgufWriter w = synthetic_model(SyntheticModel{});
  w.add_zero_tensor("v.blk.0.attn_q.weight", {64, 64}, GgmlType::F16);
  w.add_zero_tensor("v.patch_embd.weight", {64, 64}, GgmlType::F16);
  EXPECT_HAS(load_error(write(w, "vision")),
             "holds a vision tower ('v.blk.0.attn_q.weight' and 1 more tensors), which kvpack "
             "does not run");
  GgufWriter mm = synthetic_model(SyntheticModel{});
  mm.add_zero_tensor("mm.input_projection.weight", {64, 64}, GgmlType::F16);
  EXPECT_HAS(load_error(write(mm, "mmproj")), "holds a multimodal projector");
  GgufWriter stray = synthetic_model(SyntheticModel{});  // 2 layers
  stray.add_zero_tensor("blk.1.attn_gate_unknown.weight", {64, 64}, GgmlType::F16);
  EXPECT_HAS(load_error(write(stray, "stray")),
             "holds 1 tensors that a 'llama' model does not use, e.g. "
             "'blk.1.attn_gate_unknown.weight'");
  // A layer beyond block_count is named as such (checked before the tensors are bound).
  GgufWriter extra = synthetic_model(SyntheticModel{});
  extra.add_zero_tensor("blk.2.attn_q.weight", {64, 64}, GgmlType::F16);
  EXPECT_HAS(load_error(write(extra, "extra")),
             "tensor 'blk.2.attn_q.weight' belongs to layer 2, but the metadata says the model "
             "has 2 layers (block_count)");
}

TEST(ModelLoad, UnsupportedTensorTypeIsNamed) {
  SyntheticModel m;
  m.n_embd = 256;  // IQ2_XXS blocks hold 256 values
  m.retype = {{"blk.1.ffn_up.weight", GgmlType::IQ2_XXS}};
  const std::string e = load_error(write(synthetic_model(m), "iq2"));
  EXPECT_HAS(e, "tensor 'blk.1.ffn_up.weight' has type IQ2_XXS");
  EXPECT_HAS(e,
             "supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, "
             "Q4_K, Q5_K, Q6_K, IQ4_XS");
}

TEST(ModelLoad, MissingTensorIsNamed) {
  SyntheticModel m;
  m.omit = {"blk.1.attn_k.weight"};
  EXPECT_HAS(load_error(write(synthetic_model(m), "missing")),
             "missing tensor 'blk.1.attn_k.weight'");
}

TEST(ModelLoad, WrongShapeIsNamed) {
  GgufWriter w = synthetic_model(SyntheticModel{});
  w.set("llama.feed_forward_length", gguf_uint(GgufType::u32, 128));
  EXPECT_HAS(load_error(write(w, "shape")),
             "tensor 'blk.0.ffn_gate.weight' has shape [64, 96], "
             "expected [64, 128]");
}

TEST(ModelLoad, MissingMetadataIsNamed) {
  GgufWriter w = synthetic_model(SyntheticModel{});
  w.set("llama.block_count", gguf_string("two"));
  EXPECT_HAS(load_error(write(w, "meta")), "llama.block_count");
  // What only the engine needs is checked on top of the shape.
  GgufWriter no_ff = synthetic_model(SyntheticModel{});
  no_ff.set("llama.feed_forward_length", gguf_uint(GgufType::u32, 0));
  EXPECT_HAS(load_error(write(no_ff, "ff")),
             "metadata 'llama.feed_forward_length' is 0, expected 1 to 1048576");
  GgufWriter eps = synthetic_model(SyntheticModel{});
  eps.set("llama.attention.layer_norm_rms_epsilon", gguf_float(GgufType::f32, 2.0));
  EXPECT_HAS(load_error(write(eps, "eps")), "llama.attention.layer_norm_rms_epsilon' is 2");
}

TEST(ModelLoad, ContextAndVocabularyLimits) {
  const auto model = Model::load(write(synthetic_model(SyntheticModel{}), "limits"));
  ThreadPool pool(1);
  cache::Cache cache(model->cache_config(format::KVPolicy::parse("k=f16,v=f16"), 64));
  Forward fwd(*model, cache, pool, {.n_ctx = 8});
  const cache::SeqId seq = cache.create();
  const std::vector<int32_t> nine(9, 3);
  try {
    fwd.eval(seq, nine);
    FAIL() << "9 tokens fit a context of 8";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "exceed the context of 8 tokens");
  }
  EXPECT_EQ(cache.n_tokens(seq), 0);  // nothing changed
  const int32_t bad = 64;
  EXPECT_THROW(fwd.eval(seq, {&bad, 1}), Error);
  fwd.eval(seq, std::span(nine).first(8));
  EXPECT_EQ(cache.n_tokens(seq), 8);
}

}  // namespace
}  // namespace kvpack::model
