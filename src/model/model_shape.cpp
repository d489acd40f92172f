#include "model/model_shape.h"

#include <algorithm>
#include <filesystem>

#include "base/error.h"
#include "model/arch_keys.h"
#include "model/gguf.h"

namespace kvpack::model {
namespace {

std::string display_name(const GgufFile& f) {
  if (const GgufValue* v = f.find("general.name")) {
    if (const auto* s = std::get_if<std::string>(&v->scalar); s != nullptr && !s->empty()) {
      return *s;
    }
  }
  return std::filesystem::path(f.path()).filename().string();
}

// Which layers slide: a per-layer bool array, a period, or the architecture's period. Without
// any, a sliding_window key alone is ignored (every layer counted as full): over- rather than
// under-estimating memory.
std::vector<bool> read_sliding(const ArchKeys& keys, const ArchTraits* traits, int n_layers) {
  const char* suffix = "attention.sliding_window_pattern";
  const GgufValue* p = keys.file().find(keys.key(suffix));
  std::vector<bool> out(static_cast<size_t>(n_layers), false);
  if (p != nullptr && p->type == GgufType::array) {
    const std::vector<int> flags = *keys.per_layer(suffix, n_layers, 0, 1);
    for (size_t l = 0; l < flags.size(); ++l) out[l] = flags[l] != 0;
    return out;
  }
  int64_t period = traits != nullptr ? traits->swa_period : 0;
  if (p != nullptr) period = keys.require(suffix, 0, kMaxLayers);
  for (int l = 0; l < n_layers; ++l) out[static_cast<size_t>(l)] = slides(l, period);
  return out;
}

// Head dims default to embedding_length / head_count (of the first layer), as llama.cpp derives
// them.
void read_head_dims(const ArchKeys& keys, ModelShape& m) {
  auto dk = keys.optional("attention.key_length", 1, kMaxHeadDim);
  if (!dk) {
    const int q = m.layers[0].q_heads;
    if (m.n_embd == 0) {
      fail("{}: missing metadata '{}' (or '{}', the head dim)", keys.file().path(),
           keys.key("embedding_length"), keys.key("attention.key_length"));
    }
    if (q == 0 || m.n_embd % q != 0) {
      fail("{}: cannot derive the head dim: {} {} over {} heads (and no {})", keys.file().path(),
           keys.key("embedding_length"), m.n_embd, q, keys.key("attention.key_length"));
    }
    dk = m.n_embd / q;
  }
  m.head_dim_k = static_cast<int>(*dk);
  m.head_dim_v =
      static_cast<int>(keys.optional("attention.value_length", 1, kMaxHeadDim).value_or(*dk));
}

// context_length and rope.scaling.*.
void read_context(const ArchKeys& keys, ModelShape& m) {
  m.n_ctx_train = keys.require("context_length", 1, kMaxContext);
  m.rope_scaling = keys.string("rope.scaling.type").value_or("");
  double factor = keys.real("rope.scaling.factor").value_or(0.0);
  if (const auto linear = keys.real("rope.scale_linear"); linear && m.rope_scaling.empty()) {
    m.rope_scaling = "linear";  // the older key
    factor = *linear;
  }
  if (factor == 0.0) factor = 1.0;  // llama.cpp writes 0 for "unset"
  if (factor < 1.0 || factor > 1024.0) {
    fail("{}: metadata '{}' is {}, expected 1 to 1024", keys.file().path(),
         keys.key("rope.scaling.factor"), factor);
  }
  m.rope_factor = factor;
  m.rope_original_context =
      keys.optional("rope.scaling.original_context_length", 1, kMaxContext).value_or(m.n_ctx_train);
  m.native_context = m.n_ctx_train;
  m.max_context = m.n_ctx_train;
  if (m.rope_scaling == "yarn" && factor > 1) {
    const auto stretched =
        static_cast<int64_t>(static_cast<double>(m.rope_original_context) * factor);
    m.native_context = std::min(m.rope_original_context, m.n_ctx_train);
    m.max_context = std::max(m.n_ctx_train, stretched);
  }
}

}  // namespace

int kv_layers(std::span<const LayerShape> layers) {
  return static_cast<int>(
      std::count_if(layers.begin(), layers.end(), [](const LayerShape& l) { return l.kv_heads; }));
}

int sliding_layers(std::span<const LayerShape> layers) {
  return static_cast<int>(std::count_if(layers.begin(), layers.end(), [](const LayerShape& l) {
    return l.kv_heads > 0 && l.sliding;
  }));
}

ModelShape read_model_shape(const GgufFile& f) {
  ModelShape m;
  m.arch = f.require_string("general.architecture");
  m.traits = find_architecture(m.arch);
  m.name = display_name(f);
  const ArchKeys keys(f, m.arch);
  const int n_layers = static_cast<int>(keys.require("block_count", 1, kMaxLayers));
  const auto q = keys.per_layer("attention.head_count", n_layers, 0, kMaxHeads);
  if (!q) fail("{}: missing metadata '{}'", f.path(), keys.key("attention.head_count"));
  const std::vector<int> kv =
      keys.per_layer("attention.head_count_kv", n_layers, 0, kMaxHeads).value_or(*q);
  const std::vector<bool> sliding = read_sliding(keys, m.traits, n_layers);
  for (size_t l = 0; l < static_cast<size_t>(n_layers); ++l) {
    m.layers.push_back({(*q)[l], kv[l], sliding[l]});
  }
  if (kv_layers(m.layers) == 0) {
    fail("{}: no layer has K/V heads ({})", f.path(), keys.key("attention.head_count_kv"));
  }
  m.n_embd = static_cast<int>(keys.optional("embedding_length", 1, kMaxWidth).value_or(0));
  read_head_dims(keys, m);
  if (sliding_layers(m.layers) > 0) {
    m.window = keys.require("attention.sliding_window", 1, kMaxContext);
  }
  read_context(keys, m);
  return m;
}

}  // namespace kvpack::model
