// Test support: what each specialised kernel computes, written from docs/formats.md's byte
// layouts and the roundings kernel_expect.h states, in double. The kernel tests compare single
// kernel calls with these; same_rounding.h composes them into whole attention calls.
#pragma once

#include <cstdint>
#include <vector>

#include "kvpack/attention.h"
#include "kvpack/format.h"

namespace kvpack::testing {

// The spec's rounding of x: [n] to int8 with one scale per `group` values: s = max|x| / 127 (f32),
// k = round(x / s) (f32 division, ties to even), 0 for an all-zero group. codes: [n],
// scales: [n / group], effective: [n] = s * k.
void round_to_int8(const float* x, int n, int group, int* codes, float* scales, float* effective);

// One query row as a K kernel reads it: the scaled f32 query (what attention hands the kernel's
// prepare), rounded as the kernel spec says, in the format's basis (turbo: Pi q, and S q for
// the QJL formats).
struct SpecQuery {
  std::vector<float> effective;  // [query_floats]: the values the rounded row stands for
  std::vector<float> scaled;     // [head_dim]: the scaled f32 query itself (kivi, float kernels)
};
SpecQuery spec_query(const format::Codec& codec, const attention::KernelInfo& kernel, int head,
                     const float* q_scaled);

// Logits of the T tokens of one K block for one query row, as the kernel computes them (the
// kernel's logit is this up to f32 rounding), with the sum of the magnitudes of each logit's
// terms, which bounds that rounding. logit, magnitude: [page_tokens].
void spec_logits(const format::Codec& codec, const attention::KernelInfo& kernel, int head,
                 const uint8_t* block, const SpecQuery& q, double* logit, double* magnitude);

// One V head block read at the offsets docs/formats.md gives: per token its factor a_t per scale
// group (step, or turbo's norm; 1 for float formats), the minimum m_t (q4a), and per channel the
// exact element E (value = a E + m; turbo: the centroid, in the rotated basis) and the integer
// element e of the integer-weight kernels (q8: E; q4, q4a: nibble - 8; turbo: the int8 table
// code, whose scale is `post`).
struct ValueBlock {
  int groups = 1;
  std::vector<double> a;  // [groups][T]
  std::vector<double> m;  // [groups][T]
  std::vector<double> E;  // [T][d]
  std::vector<int> e;     // [T][d]
  double post = 1.0;
  bool has_min = false;
};
ValueBlock read_value_block(const format::Codec& codec, int head, const uint8_t* block);

}  // namespace kvpack::testing
