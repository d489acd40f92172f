#include "model/hparams.h"

#include "base/error.h"
#include "model/arch_keys.h"
#include "model/gguf.h"
#include "model/model_shape.h"

namespace kvpack::model {
namespace {

// The one value of a per-layer count, which the forward pass needs equal in every layer.
int same_in_every_layer(const ArchKeys& keys, std::string_view suffix,
                        const std::vector<int>& values, int64_t lo, int64_t hi) {
  for (int v : values) {
    if (v != values[0]) {
      fail("{}: metadata '{}' differs between layers, which kvpack does not support yet",
           keys.file().path(), keys.key(suffix));
    }
  }
  return static_cast<int>(keys.in_range(suffix, values[0], lo, hi));
}

std::vector<int> per_layer(const ModelShape& shape, int LayerShape::*field) {
  std::vector<int> out;
  for (const LayerShape& l : shape.layers) out.push_back(l.*field);
  return out;
}

// The attention geometry the forward pass runs: the same heads in every layer, grouped-query
// attention, no sliding window.
void read_attention(const ArchKeys& keys, const ModelShape& shape, HParams& hp) {
  const std::string& path = keys.file().path();
  hp.n_layers = shape.n_layers();
  hp.n_heads = same_in_every_layer(keys, "attention.head_count",
                                   per_layer(shape, &LayerShape::q_heads), 1, kMaxHeads);
  hp.n_kv_heads = same_in_every_layer(keys, "attention.head_count_kv",
                                      per_layer(shape, &LayerShape::kv_heads), 1, kMaxHeads);
  if (hp.n_heads % hp.n_kv_heads != 0) {
    fail("{}: {} query heads are not a multiple of {} KV heads ({})", path, hp.n_heads,
         hp.n_kv_heads, keys.key("attention.head_count_kv"));
  }
  if (const int n = sliding_layers(shape.layers); n > 0) {
    fail("{}: {} of {} layers use sliding-window attention ({}), which kvpack does not run yet",
         path, n, hp.n_layers, keys.key("attention.sliding_window_pattern"));
  }
  hp.head_dim_k = shape.head_dim_k;
  hp.head_dim_v = shape.head_dim_v;
}

// {arch}.rope.*: dimensions, base, and the scaling the shape read (linear or YaRN).
RopeConfig read_rope(const ArchKeys& keys, const ModelShape& shape, const HParams& hp) {
  const std::string& path = keys.file().path();
  RopeConfig c;
  c.ordering = hp.arch->rope;
  c.n_dims = static_cast<int>(
      keys.optional("rope.dimension_count", 2, hp.head_dim_k).value_or(hp.head_dim_k));
  if (c.n_dims % 2 != 0) {
    fail("{}: metadata '{}' is {}, expected an even number", path, keys.key("rope.dimension_count"),
         c.n_dims);
  }
  c.freq_base = keys.real("rope.freq_base").value_or(10000.0);
  if (c.freq_base <= 1) {
    fail("{}: metadata '{}' is {}, expected > 1", path, keys.key("rope.freq_base"), c.freq_base);
  }
  const std::string& type = shape.rope_scaling;
  if (type.empty() || type == "none" || shape.rope_factor == 1.0) return c;
  c.scale_factor = shape.rope_factor;
  if (type == "linear") {
    c.scaling = RopeScaling::linear;
  } else if (type == "yarn") {
    c.scaling = RopeScaling::yarn;
    c.original_context = shape.rope_original_context;
    c.yarn_attn_factor = keys.real("rope.scaling.attn_factor").value_or(1.0);
    c.yarn_beta_fast = keys.real("rope.scaling.yarn_beta_fast").value_or(32.0);
    c.yarn_beta_slow = keys.real("rope.scaling.yarn_beta_slow").value_or(1.0);
  } else {
    fail("{}: RoPE scaling '{}' ({}) is not supported yet (supported: none, linear, yarn)", path,
         type, keys.key("rope.scaling.type"));
  }
  return c;
}

// n_vocab from token_embd.weight's shape [n_embd, n_vocab].
int read_vocab_size(const GgufFile& f, int n_embd) {
  if (f.tensors().empty()) {
    fail(
        "{}: has no tensors (a vocab-only GGUF?); a model needs its weights, e.g. "
        "'token_embd.weight'",
        f.path());
  }
  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: missing tensor 'token_embd.weight'", f.path());
  if (embd->shape.size() < 2 || embd->shape[0] != n_embd || embd->shape[1] < 1 ||
      embd->shape[1] > kMaxWidth * 4) {
    fail("{}: tensor 'token_embd.weight' should be [{}, n_vocab]", f.path(), n_embd);
  }
  return static_cast<int>(embd->shape[1]);
}

}  // namespace

HParams read_hparams(const GgufFile& f) {
  HParams hp;
  // The architecture first: an unsupported one is the clearest message for its file.
  hp.arch = &require_architecture(f.require_string("general.architecture"), f.path());
  const ModelShape shape = read_model_shape(f);
  const ArchKeys keys(f, shape.arch);
  hp.name = shape.name;
  read_attention(keys, shape, hp);
  if (shape.n_embd == 0) fail("{}: missing metadata '{}'", f.path(), keys.key("embedding_length"));
  hp.n_embd = shape.n_embd;
  const auto ff = keys.per_layer("feed_forward_length", hp.n_layers, 1, kMaxWidth);
  if (!ff) fail("{}: missing metadata '{}'", f.path(), keys.key("feed_forward_length"));
  hp.n_ff = same_in_every_layer(keys, "feed_forward_length", *ff, 1, kMaxWidth);
  hp.n_ctx_train = shape.n_ctx_train;
  const double eps = keys.real("attention.layer_norm_rms_epsilon").value_or(1e-5);
  if (!(eps > 0 && eps < 1)) {
    fail("{}: metadata '{}' is {}, expected 0 < eps < 1", f.path(),
         keys.key("attention.layer_norm_rms_epsilon"), eps);
  }
  hp.norm_eps = static_cast<float>(eps);
  hp.rope = read_rope(keys, shape, hp);
  hp.n_vocab = read_vocab_size(f, hp.n_embd);
  return hp;
}

}  // namespace kvpack::model
