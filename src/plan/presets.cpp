// Built-in model shapes, from each model's public config.json / model card (FACTS.md section 1),
// read through the same model::read_model_spec as GGUF files.
#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"
#include "kvpack/plan.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace kvpack::plan {
namespace {

// Parameter counts: the models' published totals (text model only for Gemma 3, whose vision
// tower ships as a separate mmproj file; every expert for Qwen3-30B-A3B, since all experts stay
// resident). Contexts: native, then the longest the card documents (YaRN x4 for Qwen).
constexpr Preset kPresets[] = {
    // name, display, arch, layers, q, kv, head dim, swa period, window, native, max, params
    {"llama-3.1-8b", "Llama-3.1-8B", "llama", 32, 32, 8, 128, 0, 0, 131072, 131072, 8.03e9},
    {"llama-3.1-70b", "Llama-3.1-70B", "llama", 80, 64, 8, 128, 0, 0, 131072, 131072, 70.55e9},
    {"mistral-7b", "Mistral-7B-v0.3", "llama", 32, 32, 8, 128, 0, 0, 32768, 32768, 7.25e9},
    {"qwen2.5-7b", "Qwen2.5-7B", "qwen2", 28, 28, 4, 128, 0, 0, 32768, 131072, 7.62e9},
    {"qwen2.5-14b", "Qwen2.5-14B", "qwen2", 48, 40, 8, 128, 0, 0, 32768, 131072, 14.77e9},
    {"qwen2.5-32b", "Qwen2.5-32B", "qwen2", 64, 40, 8, 128, 0, 0, 32768, 131072, 32.76e9},
    {"qwen3-4b", "Qwen3-4B", "qwen3", 36, 32, 8, 128, 0, 0, 32768, 131072, 4.02e9},
    {"qwen3-8b", "Qwen3-8B", "qwen3", 36, 32, 8, 128, 0, 0, 32768, 131072, 8.19e9},
    {"qwen3-14b", "Qwen3-14B", "qwen3", 40, 40, 8, 128, 0, 0, 32768, 131072, 14.77e9},
    {"qwen3-32b", "Qwen3-32B", "qwen3", 64, 64, 8, 128, 0, 0, 32768, 131072, 32.76e9},
    {"qwen3-30b-a3b", "Qwen3-30B-A3B", "qwen3moe", 48, 32, 4, 128, 0, 0, 32768, 131072, 30.53e9},
    {"gemma-2-9b", "Gemma-2-9B", "gemma2", 42, 16, 8, 256, 2, 4096, 8192, 8192, 9.24e9},
    {"gemma-2-27b", "Gemma-2-27B", "gemma2", 46, 32, 16, 128, 2, 4096, 8192, 8192, 27.23e9},
    {"gemma-3-4b", "Gemma-3-4B", "gemma3", 34, 8, 4, 256, 6, 1024, 131072, 131072, 3.88e9},
    {"gemma-3-12b", "Gemma-3-12B", "gemma3", 48, 16, 8, 256, 6, 1024, 131072, 131072, 11.77e9},
    {"gemma-3-27b", "Gemma-3-27B", "gemma3", 62, 32, 16, 128, 6, 1024, 131072, 131072, 27.01e9},
};

// The preset as the metadata a GGUF of the model carries, in llama.cpp's keys: its layers and
// heads, sliding pattern and window, context, and YaRN where the card extends the context.
model::GgufWriter preset_metadata(const Preset& p) {
  using model::gguf_float;
  using model::gguf_string;
  using model::gguf_uint;
  using model::GgufType;
  const std::string a(p.arch);
  const auto u32 = [](int64_t v) { return gguf_uint(GgufType::u32, static_cast<uint64_t>(v)); };
  model::GgufWriter w;
  w.set("general.architecture", gguf_string(a))
      .set("general.name", gguf_string(std::string(p.name)))
      .set(a + ".block_count", u32(p.layers))
      .set(a + ".context_length", u32(p.native_context))
      .set(a + ".attention.head_count", u32(p.q_heads))
      .set(a + ".attention.head_count_kv", u32(p.kv_heads))
      .set(a + ".attention.key_length", u32(p.head_dim))
      .set(a + ".attention.value_length", u32(p.head_dim))
      .set(a + ".attention.sliding_window_pattern", u32(p.swa_period));
  if (p.swa_period > 0) w.set(a + ".attention.sliding_window", u32(p.window));
  if (p.max_context > p.native_context) {
    w.set(a + ".rope.scaling.type", gguf_string("yarn"))
        .set(a + ".rope.scaling.factor",
             gguf_float(GgufType::f32, static_cast<double>(p.max_context) / p.native_context))
        .set(a + ".rope.scaling.original_context_length", u32(p.native_context));
  }
  return w;
}

}  // namespace

std::span<const Preset> presets() {
  return kPresets;
}

const Preset& find_preset(std::string_view name) {
  for (const auto& p : kPresets) {
    if (p.name == name) return p;
  }
  std::string known;
  for (const auto& p : kPresets) known += (known.empty() ? "" : ", ") + std::string(p.name);
  fail("unknown preset '{}' (known: {})", name, known);
}

ModelShape preset_shape(const Preset& p, double weight_bits) {
  if (!(weight_bits > 0 && weight_bits <= 64)) {
    fail("invalid weight bits {}: expected a number above 0 and at most 64", weight_bits);
  }
  const std::vector<uint8_t> bytes = preset_metadata(p).bytes();
  ModelShape m;
  static_cast<model::ModelSpec&>(m) =
      model::read_model_spec(model::GgufFile::parse(bytes, "preset " + std::string(p.name)));
  m.source = "preset";
  m.params = p.params;
  m.weight_bytes = static_cast<uint64_t>(p.params * weight_bits / 8.0);
  m.weights_from = fmt::format("{:.2f}B params x {:.3g} bits", p.params / 1e9, weight_bits);
  return m;
}

}  // namespace kvpack::plan
