#include "eval/policy_cost.h"

#include <fmt/format.h>

namespace kvpack::eval {

double role_bytes_per_token(const model::ModelSpec& hp, format::Role role, format::FormatId f,
                            int page_tokens) {
  const int dim = role == format::Role::K ? hp.head_dim_k : hp.head_dim_v;
  return static_cast<double>(hp.n_kv_heads()) *
         static_cast<double>(format::info(f).head_bytes(dim, page_tokens)) / page_tokens;
}

double policy_bytes_per_token(const model::ModelSpec& hp, const format::KVPolicy& policy,
                              int page_tokens) {
  double bytes = 0;
  for (int l = 0; l < hp.n_layers(); ++l) {
    const format::LayerFormats f = policy.layer(l, hp.n_layers());
    bytes += role_bytes_per_token(hp, format::Role::K, f.k, page_tokens) +
             role_bytes_per_token(hp, format::Role::V, f.v, page_tokens);
  }
  return bytes;
}

double values_per_token(const model::ModelSpec& hp) {
  return static_cast<double>(hp.n_layers()) * hp.n_kv_heads() * (hp.head_dim_k + hp.head_dim_v);
}

double bits_per_value(const model::ModelSpec& hp, double bytes_per_token) {
  return 8.0 * bytes_per_token / values_per_token(hp);
}

std::string policy_label(const format::KVPolicy& policy) {
  if (!policy.uniform()) return policy.to_string();
  return fmt::format("{}/{}", format::info(policy.base().k).name,
                     format::info(policy.base().v).name);
}

}  // namespace kvpack::eval
