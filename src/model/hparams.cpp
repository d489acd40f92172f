#include "model/hparams.h"

#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "model/gguf.h"

namespace kvpack::model {
namespace {

constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxWidth = int64_t{1} << 20;  // n_embd, n_ff, head dims, heads, vocab
constexpr int64_t kMaxContext = int64_t{1} << 40;

// Reads {arch}.<suffix> keys of one file with range checks; errors name the file and the key.
class KeyReader {
 public:
  KeyReader(const GgufFile& f, std::string_view arch) : f_(f), prefix_(std::string(arch) + ".") {}

  std::string key(std::string_view suffix) const { return prefix_ + std::string(suffix); }

  int64_t require(std::string_view suffix, int64_t lo, int64_t hi) const {
    const auto v = optional(suffix, lo, hi);
    if (!v) fail("{}: missing metadata '{}'", f_.path(), key(suffix));
    return *v;
  }

  // A scalar, or a per-layer array whose entries all agree (per-layer counts that differ are
  // not supported yet); nullopt when absent.
  std::optional<int64_t> optional(std::string_view suffix, int64_t lo, int64_t hi) const {
    const std::string k = key(suffix);
    const GgufValue* v = f_.find(k);
    if (v == nullptr) return std::nullopt;
    int64_t x = 0;
    if (v->type == GgufType::array) {
      const std::vector<int64_t>& a = *f_.get_ints(k);
      if (a.empty()) fail("{}: metadata '{}' is an empty array", f_.path(), k);
      for (int64_t e : a) {
        if (e != a[0]) {
          fail("{}: metadata '{}' differs between layers, which kvpack does not support yet",
               f_.path(), k);
        }
      }
      x = a[0];
    } else {
      x = *f_.get_int(k);
    }
    if (x < lo || x > hi)
      fail("{}: metadata '{}' is {}, expected {} to {}", f_.path(), k, x, lo, hi);
    return x;
  }

  std::optional<double> real(std::string_view suffix) const {
    const auto v = f_.get_float(key(suffix));
    if (v && !std::isfinite(*v)) fail("{}: metadata '{}' is {}", f_.path(), key(suffix), *v);
    return v;
  }

 private:
  const GgufFile& f_;
  std::string prefix_;
};

std::string display_name(const GgufFile& f) {
  if (auto name = f.get_string("general.name"); name && !name->empty()) return *name;
  return std::filesystem::path(f.path()).filename().string();
}

// {arch}.rope.*: dimensions, base, and linear or YaRN scaling.
RopeConfig read_rope(const GgufFile& f, const KeyReader& r, const HParams& hp) {
  RopeConfig c;
  c.ordering = hp.arch->rope;
  c.n_dims = static_cast<int>(
      r.optional("rope.dimension_count", 2, hp.head_dim_k).value_or(hp.head_dim_k));
  if (c.n_dims % 2 != 0) {
    fail("{}: metadata '{}' is {}, expected an even number", f.path(),
         r.key("rope.dimension_count"), c.n_dims);
  }
  c.freq_base = r.real("rope.freq_base").value_or(10000.0);
  if (c.freq_base <= 1)
    fail("{}: metadata '{}' is {}, expected > 1", f.path(), r.key("rope.freq_base"), c.freq_base);

  std::string type = f.get_string(r.key("rope.scaling.type")).value_or("");
  double factor = r.real("rope.scaling.factor").value_or(0.0);
  if (const auto linear = r.real("rope.scale_linear"); linear && type.empty()) {
    type = "linear";  // the older key
    factor = *linear;
  }
  if (factor == 0.0) factor = 1.0;  // llama.cpp writes 0 for "unset"
  if (factor < 1.0 || factor > 1024.0) {
    fail("{}: metadata '{}' is {}, expected 1 to 1024", f.path(), r.key("rope.scaling.factor"),
         factor);
  }
  if (type.empty() || type == "none" || factor == 1.0) return c;
  c.scale_factor = factor;
  if (type == "linear") {
    c.scaling = RopeScaling::linear;
  } else if (type == "yarn") {
    c.scaling = RopeScaling::yarn;
    c.original_context =
        r.optional("rope.scaling.original_context_length", 1, kMaxContext).value_or(hp.n_ctx_train);
    c.yarn_attn_factor = r.real("rope.scaling.attn_factor").value_or(1.0);
    c.yarn_beta_fast = r.real("rope.scaling.yarn_beta_fast").value_or(32.0);
    c.yarn_beta_slow = r.real("rope.scaling.yarn_beta_slow").value_or(1.0);
  } else {
    fail("{}: RoPE scaling '{}' ({}) is not supported yet (supported: none, linear, yarn)",
         f.path(), type, r.key("rope.scaling.type"));
  }
  return c;
}

}  // namespace

HParams read_hparams(const GgufFile& f) {
  HParams hp;
  const std::string arch = f.require_string("general.architecture");
  hp.arch = &require_architecture(arch, f.path());
  hp.name = display_name(f);
  const KeyReader r(f, arch);
  hp.n_layers = static_cast<int>(r.require("block_count", 1, kMaxLayers));
  hp.n_embd = static_cast<int>(r.require("embedding_length", 1, kMaxWidth));
  hp.n_ff = static_cast<int>(r.require("feed_forward_length", 1, kMaxWidth));
  hp.n_heads = static_cast<int>(r.require("attention.head_count", 1, kMaxWidth));
  hp.n_kv_heads =
      static_cast<int>(r.optional("attention.head_count_kv", 1, kMaxWidth).value_or(hp.n_heads));
  if (hp.n_heads % hp.n_kv_heads != 0) {
    fail("{}: {} query heads are not a multiple of {} KV heads ({})", f.path(), hp.n_heads,
         hp.n_kv_heads, r.key("attention.head_count_kv"));
  }
  auto dk = r.optional("attention.key_length", 1, kMaxWidth);
  if (!dk) {
    if (hp.n_embd % hp.n_heads != 0) {
      fail("{}: cannot derive the head dim: embedding_length {} over {} heads (and no {})",
           f.path(), hp.n_embd, hp.n_heads, r.key("attention.key_length"));
    }
    dk = hp.n_embd / hp.n_heads;
  }
  hp.head_dim_k = static_cast<int>(*dk);
  hp.head_dim_v =
      static_cast<int>(r.optional("attention.value_length", 1, kMaxWidth).value_or(*dk));
  hp.n_ctx_train = r.require("context_length", 1, kMaxContext);
  const double eps = r.real("attention.layer_norm_rms_epsilon").value_or(1e-5);
  if (!(eps > 0 && eps < 1)) {
    fail("{}: metadata '{}' is {}, expected 0 < eps < 1", f.path(),
         r.key("attention.layer_norm_rms_epsilon"), eps);
  }
  hp.norm_eps = static_cast<float>(eps);
  hp.rope = read_rope(f, r, hp);

  if (f.tensors().empty()) {
    fail(
        "{}: has no tensors (a vocab-only GGUF?); a model needs its weights, e.g. "
        "'token_embd.weight'",
        f.path());
  }
  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) fail("{}: missing tensor 'token_embd.weight'", f.path());
  if (embd->shape.size() < 2 || embd->shape[0] != hp.n_embd || embd->shape[1] < 1 ||
      embd->shape[1] > kMaxWidth * 4) {
    fail("{}: tensor 'token_embd.weight' should be [{}, n_vocab]", f.path(), hp.n_embd);
  }
  hp.n_vocab = static_cast<int>(embd->shape[1]);
  return hp;
}

}  // namespace kvpack::model
