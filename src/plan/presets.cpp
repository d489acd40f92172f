// Built-in model shapes, from each model's public config.json / model card (FACTS.md section 1),
// and the ModelShape helpers shared by presets and GGUF files.
#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"
#include "kvpack/plan.h"

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

std::string heads_text(const std::vector<LayerShape>& layers, int LayerShape::*field) {
  int lo = 0;
  int hi = 0;
  bool first = true;
  for (const auto& l : layers) {
    if (l.kv_heads == 0) continue;  // layers without attention do not count
    lo = first ? l.*field : std::min(lo, l.*field);
    hi = first ? l.*field : std::max(hi, l.*field);
    first = false;
  }
  return lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi);
}

}  // namespace

int ModelShape::kv_layers() const {
  return model::kv_layers(layers);
}

int ModelShape::sliding_layers() const {
  return model::sliding_layers(layers);
}

std::string ModelShape::kv_heads_text() const {
  return heads_text(layers, &LayerShape::kv_heads);
}

std::string ModelShape::q_heads_text() const {
  return heads_text(layers, &LayerShape::q_heads);
}

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
  ModelShape m;
  m.name = std::string(p.name);
  m.source = "preset";
  m.arch = std::string(p.arch);
  for (int l = 0; l < p.layers; ++l) {
    m.layers.push_back({p.q_heads, p.kv_heads, model::slides(l, p.swa_period)});
  }
  m.head_dim_k = p.head_dim;
  m.head_dim_v = p.head_dim;
  m.window = p.swa_period > 0 ? p.window : 0;
  m.native_context = p.native_context;
  m.max_context = p.max_context;
  m.params = p.params;
  m.weight_bytes = static_cast<uint64_t>(p.params * weight_bits / 8.0);
  m.weights_from = fmt::format("{:.2f}B params x {:.3g} bits", p.params / 1e9, weight_bits);
  return m;
}

}  // namespace kvpack::plan
