// Model loading: GGUF -> model description -> weights bound by name -> RoPE tables per layer ->
// tokenizer.
#include <fmt/format.h>

#include "base/error.h"
#include "kvpack/model.h"

namespace kvpack::model {
namespace {

std::vector<Rope> layer_ropes(const ModelSpec& spec) {
  std::vector<Rope> out;
  out.reserve(spec.layers.size());
  for (const LayerSpec& l : spec.layers) out.emplace_back(l.rope);
  return out;
}

// What pages produced under one RoPE carry: kvpack never shares pages across these.
std::string rope_salt(const RopeConfig& r) {
  return fmt::format("dims={} base={} ordering={} scaling={} factor={} orig={} factors={}",
                     r.n_dims, r.freq_base, static_cast<int>(r.ordering),
                     static_cast<int>(r.scaling), r.scale_factor, r.original_context,
                     r.freq_factors.size());
}

}  // namespace

Model::Model(GgufFile file, ModelSpec spec)
    : file_(std::move(file)),
      spec_(std::move(spec)),
      weights_(bind_weights(file_, spec_)),  // adds rope_freqs to spec_ before ropes_ are built
      ropes_(layer_ropes(spec_)),
      tokenizer_(Tokenizer::from_gguf(file_)) {
  if (tokenizer_ && tokenizer_->n_vocab() != spec_.n_vocab) {
    fail("{}: the tokenizer has {} tokens but token_embd.weight has {} rows", file_.path(),
         tokenizer_->n_vocab(), spec_.n_vocab);
  }
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  GgufFile file = GgufFile::open(path);
  ModelSpec spec = read_runnable_spec(file);
  return std::unique_ptr<Model>(new Model(std::move(file), std::move(spec)));
}

cache::CacheConfig Model::cache_config(const format::KVPolicy& policy, int64_t context,
                                       int page_tokens) const {
  if (context < 1) fail("context {} must be at least one token", context);
  cache::CacheConfig c;
  c.n_layers = spec_.n_layers();
  c.n_kv_heads = spec_.n_kv_heads();
  c.head_dim_k = spec_.head_dim_k;
  c.head_dim_v = spec_.head_dim_v;
  c.page_tokens = page_tokens;
  c.policy = policy;
  const int64_t pages = (context + page_tokens - 1) / page_tokens;
  if (pages >= int64_t{UINT32_MAX}) fail("context {} is too long", context);
  c.n_pages = static_cast<uint32_t>(pages);
  // Pages are shared only between producers of identical K/V: same model, same RoPE per layer
  // kind (Gemma 3's sliding layers have their own).
  c.salt = fmt::format("{} {} rope {}", spec_.arch, spec_.name, rope_salt(spec_.layers[0].rope));
  for (const LayerSpec& l : spec_.layers) {
    if (l.rope != spec_.layers[0].rope) {
      c.salt += fmt::format(" sliding rope {}", rope_salt(l.rope));
      break;
    }
  }
  return c;
}

}  // namespace kvpack::model
