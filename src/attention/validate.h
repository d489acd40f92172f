// Internal: argument checks shared by every attention entry point, so each reports bad shapes
// the same way (kvpack::Error naming what was expected).
#pragma once

#include <cmath>

#include "kvpack/attention.h"

namespace kvpack::attention::detail {

// Throws Error unless the view is self-consistent, n_q_heads is a positive multiple of its KV
// heads, 1 <= n_new <= n_tokens and the parameters are finite and non-negative where required.
void validate_call(const cache::LayerView& view, int n_new, int n_q_heads, const Params& params);

// The multiplier applied to <q, k>: params.scale, or 1/sqrt(head_dim_k) when it is 0.
inline double logit_scale(const cache::LayerView& view, const Params& params) {
  return params.scale != 0.0f ? static_cast<double>(params.scale)
                              : 1.0 / std::sqrt(static_cast<double>(view.head_dim_k));
}

}  // namespace kvpack::attention::detail
