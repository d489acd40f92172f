// Model loading: GGUF -> hyperparameters -> weights bound by name -> RoPE tables -> tokenizer.
#include <fmt/format.h>

#include "base/error.h"
#include "kvpack/model.h"

namespace kvpack::model {

Model::Model(GgufFile file, HParams hp)
    : file_(std::move(file)),
      hp_(std::move(hp)),
      weights_(bind_weights(file_, hp_)),  // adds rope_freqs to hp_.rope before rope_ is built
      rope_(hp_.rope),
      tokenizer_(Tokenizer::from_gguf(file_)) {
  if (tokenizer_ && tokenizer_->n_vocab() != hp_.n_vocab) {
    fail("{}: the tokenizer has {} tokens but token_embd.weight has {} rows", file_.path(),
         tokenizer_->n_vocab(), hp_.n_vocab);
  }
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  GgufFile file = GgufFile::open(path);
  HParams hp = read_hparams(file);
  return std::unique_ptr<Model>(new Model(std::move(file), std::move(hp)));
}

cache::CacheConfig Model::cache_config(const format::KVPolicy& policy, int64_t context,
                                       int page_tokens) const {
  if (context < 1) fail("context {} must be at least one token", context);
  cache::CacheConfig c;
  c.n_layers = hp_.n_layers;
  c.n_kv_heads = hp_.n_kv_heads;
  c.head_dim_k = hp_.head_dim_k;
  c.head_dim_v = hp_.head_dim_v;
  c.page_tokens = page_tokens;
  c.policy = policy;
  const int64_t pages = (context + page_tokens - 1) / page_tokens;
  if (pages >= int64_t{UINT32_MAX}) fail("context {} is too long", context);
  c.n_pages = static_cast<uint32_t>(pages);
  const RopeConfig& r = hp_.rope;
  // Pages are shared only between producers of identical K/V: same model, same RoPE.
  c.salt = fmt::format("{} {} rope dims={} base={} scaling={} factor={} orig={} factors={}",
                       hp_.arch->name, hp_.name, r.n_dims, r.freq_base, static_cast<int>(r.scaling),
                       r.scale_factor, r.original_context, r.freq_factors.size());
  return c;
}

}  // namespace kvpack::model
