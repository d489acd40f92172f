// The mixture-of-experts FFN: h = sum over the token's chosen experts e of
// w_e W_down,e (SiLU(W_gate,e h) * W_up,e h). Rows of a pass (of any sequences) are grouped by
// expert, so each expert chosen by any row runs once as a matmul over its rows, and an expert no
// row chose is never read: a decode step streams n_expert_used experts per layer, not all of them.
#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kvpack/model.h"
#include "model/moe.h"
#include "model/ops.h"

namespace kvpack::model {

void Forward::moe_ffn(const LayerWeights& w, const Step& s) {
  const int n_expert = spec_.moe.n_expert, k = spec_.moe.n_expert_used;
  const int ff = spec_.moe.n_ff_exp;
  const size_t d = static_cast<size_t>(spec_.n_embd);
  project(w.router, {}, h_.get(), router_.get(), s);
  for (int t = 0; t < s.n; ++t) {
    const float* logits = router_.get() + static_cast<size_t>(t) * n_expert;
    int32_t* ids = &moe_ids_[static_cast<size_t>(t) * k];
    float* weights = &moe_weights_[static_cast<size_t>(t) * k];
    route_experts(logits, n_expert, k, ids, weights);
    if (options_.route) {
      options_.route(s.layer, row_pos_[static_cast<size_t>(t)], {ids, static_cast<size_t>(k)});
      for (int j = 0; j < k; ++j) {
        if (ids[j] < 0 || ids[j] >= n_expert) {
          fail("forward: the route hook chose expert {} of {}", ids[j], n_expert);
        }
      }
      expert_weights(logits, n_expert, ids, k, weights);
    }
  }
  if (options_.trace) {
    const std::vector<float> ids(moe_ids_.begin(), moe_ids_.begin() + s.n * k);
    trace("ffn_moe_topk", s, k, ids.data());
    trace("ffn_moe_weights", s, k, moe_weights_.data());
  }
  float* out = moe_out_.get();  // (n, n_embd)
  std::fill_n(out, static_cast<size_t>(s.n) * d, 0.0f);
  for (int e = 0; e < n_expert; ++e) {
    // expert_rows_: the (row, slot) entries routed to e, as row * k + slot.
    int m = 0;
    for (int i = 0; i < s.n * k; ++i) {
      if (moe_ids_[static_cast<size_t>(i)] == e) expert_rows_[static_cast<size_t>(m++)] = i;
    }
    if (m == 0) continue;
    for (int r = 0; r < m; ++r) {
      const size_t row = static_cast<size_t>(expert_rows_[static_cast<size_t>(r)] / k);
      std::memcpy(expert_in_.get() + r * d, h_.get() + row * d, d * sizeof(float));
    }
    const ExpertWeights& x = w.experts[static_cast<size_t>(e)];
    matmul(x.gate, expert_in_.get(), m, gate_.get(), pool_, options_.dot);
    matmul(x.up, expert_in_.get(), m, up_.get(), pool_, options_.dot);
    swiglu(gate_.get(), up_.get(), int64_t{m} * ff, gate_.get());
    matmul(x.down, gate_.get(), m, expert_out_.get(), pool_, options_.dot);
    for (int r = 0; r < m; ++r) {
      const int slot = expert_rows_[static_cast<size_t>(r)];
      const float weight = moe_weights_[static_cast<size_t>(slot)];
      float* o = out + static_cast<size_t>(slot / k) * d;
      const float* y = expert_out_.get() + r * d;
      for (size_t j = 0; j < d; ++j) o[j] += weight * y[j];
    }
  }
  std::memcpy(h_.get(), out, static_cast<size_t>(s.n) * d * sizeof(float));
  trace("ffn_moe_out", s, spec_.n_embd, h_.get());
}

}  // namespace kvpack::model
