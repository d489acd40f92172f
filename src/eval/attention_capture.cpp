#include "eval/attention_capture.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "base/error.h"
#include "eval/policy_search.h"

namespace kvpack::eval {
namespace {

// Copies a traced tensor's rows into `dst` at their positions.
void store(const model::TraceTensor& t, std::vector<float>& dst) {
  const size_t at = static_cast<size_t>(t.pos * t.cols);
  const size_t n = static_cast<size_t>(t.rows * t.cols);
  KVPACK_ASSERT(at + n <= dst.size(), "trace {} rows past the capture", t.name);
  std::copy(t.data, t.data + n, dst.begin() + static_cast<ptrdiff_t>(at));
}

}  // namespace

AttentionCapture capture_attention(const model::Model& model, std::span<const int32_t> tokens,
                                   int batch, int page_tokens, ThreadPool& pool) {
  const model::ModelSpec& hp = model.spec();
  AttentionCapture c;
  c.tokens.assign(tokens.begin(), tokens.end());
  c.n_layers = hp.n_layers();
  c.n_heads = hp.n_heads();
  c.n_kv_heads = hp.n_kv_heads();
  c.head_dim_k = hp.head_dim_k;
  c.head_dim_v = hp.head_dim_v;
  c.page_tokens = page_tokens;
  const size_t n = tokens.size(), layers = static_cast<size_t>(hp.n_layers());
  c.q.assign(layers, std::vector<float>(n * hp.q_dim()));
  c.k.assign(layers, std::vector<float>(n * hp.k_dim()));
  c.v.assign(layers, std::vector<float>(n * hp.v_dim()));
  std::vector<std::string> q_names, k_names, v_names;
  for (int l = 0; l < hp.n_layers(); ++l) {
    q_names.push_back(fmt::format("blk.{}.q_rope", l));
    k_names.push_back(fmt::format("blk.{}.k_rope", l));
    v_names.push_back(fmt::format("blk.{}.attn_v.weight", l));
  }
  const format::KVPolicy f32(format::FormatId::f32, format::FormatId::f32);
  cache::Cache cache(model.cache_config(f32, static_cast<int64_t>(n), page_tokens, batch));
  model::ForwardOptions options{.max_chunk = batch};
  options.trace = [&](const model::TraceTensor& t) {
    if (t.layer < 0) return;
    const size_t l = static_cast<size_t>(t.layer);
    if (t.name == q_names[l]) store(t, c.q[l]);
    if (t.name == k_names[l]) store(t, c.k[l]);
    if (t.name == v_names[l]) store(t, c.v[l]);
  };
  model::Forward fwd(model, cache, pool, options);
  fwd.eval(cache.create(), tokens);
  return c;
}

PolicyAttention::PolicyAttention(const model::Model& model, const AttentionCapture& c,
                                 const format::KVPolicy& policy, ThreadPool& pool)
    : capture_(c), pool_(pool) {
  policy.validate(c.n_layers, c.head_dim_k, c.head_dim_v, c.page_tokens);
  cache_ = std::make_unique<cache::Cache>(
      model.cache_config(policy, c.n_tokens(), c.page_tokens, /*step_chunk=*/0));
  seq_ = cache_->create();
  cache_->add_tokens(seq_, c.tokens);
  const int n = static_cast<int>(c.n_tokens());
  for (int l = 0; l < c.n_layers; ++l) {
    cache_->append(seq_, l, c.k[static_cast<size_t>(l)].data(), c.v[static_cast<size_t>(l)].data(),
                   n);
  }
}

PolicyAttention::~PolicyAttention() = default;

cache::LayerView PolicyAttention::view(int layer) const {
  return cache_->view(seq_, layer);
}

std::vector<float> PolicyAttention::output(int layer) {
  const int n = static_cast<int>(capture_.n_tokens());
  std::vector<float> out(static_cast<size_t>(n) * capture_.n_heads * capture_.head_dim_v);
  attention::prefill(view(layer), capture_.q[static_cast<size_t>(layer)].data(), n,
                     capture_.n_heads, out.data(), attention::Params{}, pool_, ws_);
  return out;
}

format::KVPolicy keys_only(const format::KVPolicy& policy, int n_layers) {
  std::vector<format::FormatId> k, v(static_cast<size_t>(n_layers), format::FormatId::f32);
  for (int l = 0; l < n_layers; ++l) k.push_back(policy.layer(l, n_layers).k);
  return policy_from_layers(k, v);
}

format::KVPolicy values_only(const format::KVPolicy& policy, int n_layers) {
  std::vector<format::FormatId> k(static_cast<size_t>(n_layers), format::FormatId::f32), v;
  for (int l = 0; l < n_layers; ++l) v.push_back(policy.layer(l, n_layers).v);
  return policy_from_layers(k, v);
}

}  // namespace kvpack::eval
