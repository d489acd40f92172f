// Test support: a whole attention call (decode or prefill, same semantics as
// attention::reference) computed in double with the roundings the fast paths apply by design
// (kernel_expect.h, kernel_spec.h): the int8 query of the integer K kernels, the int8 centroid
// tables, the integer value weights of each page. What is left between a SIMD call and this is
// f32 rounding and the exp2 polynomial, so the tolerance is tight: an all-zero output, a lost
// term or a skipped page fails by orders of magnitude (decode_test.cpp checks that it would).
//
// Integer weights round w_t a_t against the page's largest w and a (value_weights-inl.h); the
// kernel's f32 softmax weights differ from the double ones here by a relative `eta` (logits'
// f32 rounding, exp2), so a product within eta of a rounding tie may round either way: such a
// token may add one step c of its integer element either way, and the tolerance says so.
#pragma once

#include <vector>

#include "kvpack/attention.h"
#include "kvpack/cache.h"

namespace kvpack::testing {

struct Expectation {
  std::vector<double> value;  // [n_new][n_q_heads][head_dim_v]
  std::vector<double> tol;    // the same shape
};

// q: [n_new][n_q_heads][head_dim_k], as attention::prefill takes it (decode: n_new = 1).
Expectation same_rounding(const cache::LayerView& view, const float* q, int n_new, int n_q_heads,
                          const attention::Params& params);

}  // namespace kvpack::testing
