// Scalar reference for the weight types kvpack computes with (F32, F16, BF16, Q8_0, Q4_0):
// ggml's byte layouts, its reference quantizers reproduced bit for bit, dequantization, and the
// dot products the SIMD kernels in matmul.cpp are tested against. docs/weights.md describes the
// layouts; this file is their readable specification.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/ggml_type.h"

namespace kvpack::model {

// Values per Q8_0 / Q4_0 block.
inline constexpr int kQBlock = 32;

// Q8_0: x = qs[j] * d.
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQBlock];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: x = (q - 8) * d; element j < 16 is the low nibble of qs[j], element j >= 16 the high
// nibble of qs[j - 16].
struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// True for the types this file (and the matmul kernels) handle.
bool is_weight_type(GgmlType t);
// Values per block (1 for the float types) and bytes per block.
int weight_block_size(GgmlType t);
int weight_block_bytes(GgmlType t);
// Bytes of a row of n values; n must be a multiple of the block size.
size_t weight_row_bytes(GgmlType t, int64_t n);

// ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref, bit for bit (n a multiple of 32).
// Blocks ggml cannot represent (leaving the result undefined) get a NaN scale here, so whatever
// reads them turns NaN rather than silently wrong: a block holding NaN or Inf, or one whose scale
// overflows f16 (|x| beyond 127 * 65504 ~ 8.3e6 for Q8_0, 8 * 65504 for Q4_0).
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);

// Any weight type from f32 (F16/BF16 round to nearest even, as ggml's reference converters).
void quantize_row_ref(GgmlType t, const float* x, void* y, int64_t n);
// Exactly ggml's dequantize_row_* / *_to_fp32_row: every product is exact in f32, so there is a
// single correct answer and the SIMD paths must produce it bit for bit.
void dequantize_row_ref(GgmlType t, const void* x, float* y, int64_t n);

// Dot products the matmul kernels approximate, evaluated in double (n values):
//  - weights (any type) with f32 activations: sum dequant(w)[j] * x[j];
//  - Q8_0/Q4_0 weights with q8_0 activations: sum over blocks of d_w * d_x * (integer dot).
// `abs_sum` (optional) receives the sum of |terms|, which scales the rounding error bounds.
double vec_dot_f32_ref(GgmlType t, const void* w, const float* x, int64_t n,
                       double* abs_sum = nullptr);
double vec_dot_q8_ref(GgmlType t, const void* w, const BlockQ8_0* xq, int64_t n,
                      double* abs_sum = nullptr);

// A priori bound on |vec_dot_q8_ref(w, q8_0(x)) - vec_dot_f32_ref(w, x)| (exact arithmetic): the
// error that quantizing activations to q8_0 adds to an integer-path matvec output. Quantizing moves
// each value of a block with scale d = amax/127 by at most d*(0.5 + 2^-14) + 127*|d - f16(d)|
// (rounding to the grid, plus the f16 rounding of the scale; <= 0.57 d for normal f16 scales), so
// the bound is the sum over blocks of that times sum |w| over the block. Zero for F32/F16/BF16.
double q8_activation_error_bound(GgmlType t, const void* w, const float* x, int64_t n);
// The typical size of that error: its standard deviation when each activation's rounding error is
// independent and uniform over its grid step d, sqrt(sum_j w_j^2 d^2 / 12). Random-data tests see
// errors of a few of these; the bound above is usually 10-30 times larger.
double q8_activation_error_rms(GgmlType t, const void* w, const float* x, int64_t n);

}  // namespace kvpack::model
