// read_model_spec: GGUF metadata -> the model description, applying the architecture row's rules
// (sliding pattern and window, RoPE of the sliding layers, query scale, softcaps) per layer.
#include "model/model_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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

// The sliding layers' window: attention.sliding_window, else the architecture's default. Without
// either, a pattern from the metadata is an error and the architecture's own pattern is dropped
// (no layer slides), as llama.cpp reads a Gemma 3 file without the key; so is a window of 0.
int64_t read_window(const ArchKeys& keys, const ArchTraits* traits) {
  const char* suffix = "attention.sliding_window";
  if (const auto w = keys.optional(suffix, 0, kMaxContext)) return *w;
  if (traits != nullptr && traits->swa_window > 0) return traits->swa_window;
  if (keys.file().find(keys.key("attention.sliding_window_pattern")) != nullptr) {
    fail("{}: missing metadata '{}'", keys.file().path(), keys.key(suffix));
  }
  return 0;
}

// Head dims default to embedding_length / head_count (of the first layer), as llama.cpp derives
// them.
void read_head_dims(const ArchKeys& keys, ModelSpec& m) {
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
void read_context(const ArchKeys& keys, ModelSpec& m) {
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

double read_rope_base(const ArchKeys& keys, std::string_view suffix, double fallback) {
  const double base = keys.real(suffix).value_or(fallback);
  if (base <= 1) {
    fail("{}: metadata '{}' is {}, expected > 1", keys.file().path(), keys.key(suffix), base);
  }
  return base;
}

// The RoPE of full layers and of sliding layers: dimensions, bases and the context scaling.
// A scaling type kvpack does not know is left out here (the planner does not need it);
// check_runnable refuses it.
std::pair<RopeConfig, RopeConfig> read_ropes(const ArchKeys& keys, const ModelSpec& m) {
  RopeConfig full;
  full.ordering = m.traits != nullptr ? m.traits->rope : RopeOrdering::interleaved;
  full.n_dims = static_cast<int>(
      keys.optional("rope.dimension_count", 2, m.head_dim_k).value_or(m.head_dim_k));
  if (full.n_dims % 2 != 0) {
    fail("{}: metadata '{}' is {}, expected an even number", keys.file().path(),
         keys.key("rope.dimension_count"), full.n_dims);
  }
  full.freq_base = read_rope_base(keys, "rope.freq_base", 10000.0);
  RopeConfig sliding = full;
  const double swa_base = m.traits != nullptr ? m.traits->swa_rope_base : 0.0;
  sliding.freq_base =
      read_rope_base(keys, "rope.freq_base_swa", swa_base > 0 ? swa_base : full.freq_base);
  const std::string& type = m.rope_scaling;
  if (type.empty() || type == "none" || m.rope_factor == 1.0) return {full, sliding};
  if (type == "linear") {
    full.scaling = RopeScaling::linear;
  } else if (type == "yarn") {
    full.scaling = RopeScaling::yarn;
    full.original_context = m.rope_original_context;
    full.yarn_attn_factor = keys.real("rope.scaling.attn_factor").value_or(1.0);
    full.yarn_beta_fast = keys.real("rope.scaling.yarn_beta_fast").value_or(32.0);
    full.yarn_beta_slow = keys.real("rope.scaling.yarn_beta_slow").value_or(1.0);
  } else {
    return {full, sliding};
  }
  full.scale_factor = m.rope_factor;
  if (m.traits == nullptr || !m.traits->swa_rope_unscaled) {
    const double base = sliding.freq_base;
    sliding = full;
    sliding.freq_base = base;
  }
  return {full, sliding};
}

// The query scale: 1/sqrt(n_embd / n_head) in the architecture's 27B-sized models (llama.cpp's
// rule, integer division as there), else 0 (attention's default, 1/sqrt(head_dim_k)).
float query_scale(const ModelSpec& m) {
  const int rule = m.traits != nullptr ? m.traits->query_scale_embd_layers : 0;
  if (rule == 0 || m.n_layers() != rule || m.n_embd == 0 || m.layers[0].q_heads == 0) return 0;
  return 1.0f / std::sqrt(static_cast<float>(m.n_embd / m.layers[0].q_heads));
}

float read_softcap(const ArchKeys& keys, std::string_view suffix, float fallback) {
  const double cap = keys.real(suffix).value_or(fallback);
  if (cap < 0)
    fail("{}: metadata '{}' is {}, expected >= 0", keys.file().path(), keys.key(suffix), cap);
  return static_cast<float>(cap);
}

// Heads, sliding flags and window: the per-layer attention geometry.
void read_layers(const ArchKeys& keys, ModelSpec& m) {
  const std::string& path = keys.file().path();
  const int n_layers = static_cast<int>(keys.require("block_count", 1, kMaxLayers));
  const auto q = keys.per_layer("attention.head_count", n_layers, 0, kMaxHeads);
  if (!q) fail("{}: missing metadata '{}'", path, keys.key("attention.head_count"));
  const std::vector<int> kv =
      keys.per_layer("attention.head_count_kv", n_layers, 0, kMaxHeads).value_or(*q);
  const std::vector<bool> sliding = read_sliding(keys, m.traits, n_layers);
  const bool any_sliding = std::count(sliding.begin(), sliding.end(), true) > 0;
  const int64_t window = any_sliding ? read_window(keys, m.traits) : 0;
  for (size_t l = 0; l < static_cast<size_t>(n_layers); ++l) {
    LayerSpec& layer = m.layers.emplace_back();
    layer.q_heads = (*q)[l];
    layer.kv_heads = kv[l];
    layer.window = sliding[l] ? window : 0;
  }
  if (m.kv_layers() == 0) {
    fail("{}: no layer has K/V heads ({})", path, keys.key("attention.head_count_kv"));
  }
}

// Widths, norm epsilon, softcaps and experts.
void read_widths(const ArchKeys& keys, ModelSpec& m) {
  const GgufFile& f = keys.file();
  m.n_embd = static_cast<int>(keys.optional("embedding_length", 1, kMaxWidth).value_or(0));
  if (const auto ff = keys.per_layer("feed_forward_length", m.n_layers(), 0, kMaxWidth)) {
    m.n_ff = *std::max_element(ff->begin(), ff->end());
  }
  const double eps = keys.real("attention.layer_norm_rms_epsilon").value_or(1e-5);
  if (!(eps > 0 && eps < 1)) {
    fail("{}: metadata '{}' is {}, expected 0 < eps < 1", f.path(),
         keys.key("attention.layer_norm_rms_epsilon"), eps);
  }
  m.norm_eps = static_cast<float>(eps);
  const ArchTraits* t = m.traits;
  if (t != nullptr && t->embed_scale && m.n_embd > 0) {
    m.embed_scale = std::sqrt(static_cast<float>(m.n_embd));
  }
  m.final_softcap = read_softcap(keys, "final_logit_softcapping", t ? t->final_softcap : 0);
  m.moe.n_expert = static_cast<int>(keys.optional("expert_count", 0, kMaxExperts).value_or(0));
  m.moe.n_expert_used =
      static_cast<int>(keys.optional("expert_used_count", 0, kMaxExperts).value_or(0));
  m.moe.n_ff_exp =
      static_cast<int>(keys.optional("expert_feed_forward_length", 0, kMaxWidth).value_or(0));
  if (m.moe.n_expert > 0 && m.moe.n_ff_exp == 0 && m.moe.n_expert_used > 0) {
    m.moe.n_ff_exp = m.n_ff / m.moe.n_expert_used;  // llama.cpp's default
  }
  // n_vocab from token_embd.weight [n_embd, n_vocab] when the file has it in that shape.
  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (embd != nullptr && embd->shape.size() >= 2 && embd->shape[0] == m.n_embd &&
      embd->shape[1] >= 1 && embd->shape[1] <= kMaxWidth * 4) {
    m.n_vocab = static_cast<int>(embd->shape[1]);
  }
}

std::string heads_text(const std::vector<LayerSpec>& layers, int LayerSpec::*field) {
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

int most(const std::vector<LayerSpec>& layers, int LayerSpec::*field) {
  int n = 0;
  for (const auto& l : layers) n = std::max(n, l.*field);
  return n;
}

}  // namespace

int ModelSpec::kv_layers() const {
  return static_cast<int>(
      std::count_if(layers.begin(), layers.end(), [](const LayerSpec& l) { return l.kv_heads; }));
}

int ModelSpec::sliding_layers() const {
  return static_cast<int>(std::count_if(layers.begin(), layers.end(), [](const LayerSpec& l) {
    return l.kv_heads > 0 && l.sliding();
  }));
}

int64_t ModelSpec::window() const {
  int64_t w = 0;
  for (const LayerSpec& l : layers) {
    if (l.kv_heads > 0) w = std::max(w, l.window);
  }
  return w;
}

int ModelSpec::n_heads() const {
  return most(layers, &LayerSpec::q_heads);
}

int ModelSpec::n_kv_heads() const {
  return most(layers, &LayerSpec::kv_heads);
}

std::string ModelSpec::q_heads_text() const {
  return heads_text(layers, &LayerSpec::q_heads);
}

std::string ModelSpec::kv_heads_text() const {
  return heads_text(layers, &LayerSpec::kv_heads);
}

ModelSpec read_model_spec(const GgufFile& f) {
  ModelSpec m;
  m.arch = f.require_string("general.architecture");
  m.traits = find_architecture(m.arch);
  m.name = display_name(f);
  const ArchKeys keys(f, m.arch);
  read_layers(keys, m);
  read_widths(keys, m);
  read_head_dims(keys, m);
  read_context(keys, m);
  const auto [full, sliding] = read_ropes(keys, m);
  const float scale = query_scale(m);
  const float softcap =
      read_softcap(keys, "attn_logit_softcapping", m.traits ? m.traits->attn_softcap : 0);
  for (LayerSpec& l : m.layers) {
    l.rope = l.sliding() ? sliding : full;
    l.att_scale = scale;
    l.att_softcap = softcap;
  }
  return m;
}

}  // namespace kvpack::model
