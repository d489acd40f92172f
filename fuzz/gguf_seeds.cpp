// Writes the GGUF fuzzer's seed corpus into a folder: small files in the shapes kvpack reads
// (llama, qwen2 with YaRN, gemma2/gemma3 sliding patterns), every metadata type and nesting,
// both versions and several alignments. Usage: gguf_seeds DIR
#include <cstdio>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "model/gguf_writer.h"

namespace {

using namespace kvpack::model;
using T = GgufType;

GgufWriter llama(uint64_t alignment, uint32_t version) {
  GgufWriter w(alignment, version);
  w.set("general.architecture", gguf_string("llama"))
      .set("general.name", gguf_string("seed"))
      .set("llama.block_count", gguf_uint(T::u32, 2))
      .set("llama.context_length", gguf_uint(T::u32, 2048))
      .set("llama.embedding_length", gguf_uint(T::u32, 64))
      .set("llama.attention.head_count", gguf_uint(T::u32, 8))
      .set("llama.attention.head_count_kv", gguf_uint(T::u32, 4))
      .set("llama.attention.layer_norm_rms_epsilon", gguf_float(T::f32, 1e-5))
      .set("tokenizer.ggml.model", gguf_string("llama"))
      .set("tokenizer.ggml.tokens", gguf_string_array({"<unk>", "<s>", "</s>", "a", "b"}))
      .set("tokenizer.ggml.scores", gguf_float_array(T::f32, {0, 0, 0, -1, -2}))
      .set("tokenizer.ggml.token_type", gguf_int_array(T::i32, {2, 3, 3, 1, 1}));
  w.add_zero_tensor("token_embd.weight", {64, 5}, GgmlType::F32);
  w.add_zero_tensor("blk.0.attn_q.weight", {64, 2}, GgmlType::Q8_0);
  w.add_zero_tensor("blk.0.ffn_up.weight", {256, 1}, GgmlType::Q4_K);
  w.add_zero_tensor("output_norm.weight", {64}, GgmlType::F16);
  return w;
}

GgufWriter gemma(const char* arch, int layers) {
  const std::string a = arch;
  GgufWriter w;
  w.set("general.architecture", gguf_string(a))
      .set(a + ".block_count", gguf_uint(T::u32, static_cast<uint64_t>(layers)))
      .set(a + ".context_length", gguf_uint(T::u32, 131072))
      .set(a + ".embedding_length", gguf_uint(T::u32, 256))
      .set(a + ".attention.head_count", gguf_uint(T::u32, 4))
      .set(a + ".attention.key_length", gguf_uint(T::u32, 64))
      .set(a + ".attention.value_length", gguf_uint(T::u32, 64))
      .set(a + ".attention.sliding_window", gguf_uint(T::u32, 1024));
  w.add_zero_tensor("token_embd.weight", {256, 2}, GgmlType::BF16);
  return w;
}

GgufWriter every_type() {
  GgufWriter w(64, 3);
  w.set("u8", gguf_uint(T::u8, 7))
      .set("i8", gguf_int(T::i8, -7))
      .set("u16", gguf_uint(T::u16, 700))
      .set("i16", gguf_int(T::i16, -700))
      .set("u32", gguf_uint(T::u32, 70000))
      .set("i32", gguf_int(T::i32, -70000))
      .set("u64", gguf_uint(T::u64, 1ull << 40))
      .set("i64", gguf_int(T::i64, -(1ll << 40)))
      .set("f32", gguf_float(T::f32, 0.5))
      .set("f64", gguf_float(T::f64, -0.25))
      .set("bool", gguf_bool(true))
      .set("str", gguf_string("text"))
      .set("a_bool", gguf_int_array(T::boolean, {1, 0}))
      .set("a_u16", gguf_int_array(T::u16, {1, 2}))
      .set("a_f64", gguf_float_array(T::f64, {1.0}))
      .set("nested", gguf_nested_array({gguf_int_array(T::u8, {1}),
                                        gguf_nested_array({gguf_string_array({"x"})})}));
  return w;
}

void save(const std::filesystem::path& dir, const char* name, const GgufWriter& w) {
  w.write((dir / name).string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_seeds DIR\n");
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    save(dir, "llama-v3.gguf", llama(32, 3));
    save(dir, "llama-v2-align64.gguf", llama(64, 2));
    GgufWriter qwen = llama(32, 3);
    qwen.set("general.architecture", gguf_string("qwen2"));
    for (const char* k : {"block_count", "context_length", "embedding_length"}) {
      qwen.set(std::string("qwen2.") + k, gguf_uint(T::u32, 64));
    }
    qwen.set("qwen2.attention.head_count", gguf_int_array(T::i32, std::vector<int64_t>(64, 8)))
        .set("qwen2.rope.scaling.type", gguf_string("yarn"))
        .set("qwen2.rope.scaling.factor", gguf_float(T::f32, 4))
        .set("qwen2.rope.scaling.original_context_length", gguf_uint(T::u32, 32768));
    save(dir, "qwen2-yarn.gguf", qwen);
    GgufWriter g3 = gemma("gemma3", 12);
    g3.set("gemma3.attention.head_count_kv",
           gguf_int_array(T::u32, {2, 2, 2, 2, 2, 4, 2, 2, 2, 2, 2, 4}));
    save(dir, "gemma3.gguf", g3);
    GgufWriter g2 = gemma("gemma2", 4);
    g2.set("gemma2.attention.sliding_window_pattern", gguf_int_array(T::boolean, {1, 0, 1, 0}));
    save(dir, "gemma2-pattern.gguf", g2);
    GgufWriter period = gemma("gemma3", 8);
    period.set("gemma3.attention.sliding_window_pattern", gguf_uint(T::u32, 4));
    save(dir, "gemma3-period.gguf", period);
    save(dir, "every-type.gguf", every_type());
    save(dir, "empty.gguf", GgufWriter());
  } catch (const kvpack::Error& e) {
    std::fprintf(stderr, "gguf_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
