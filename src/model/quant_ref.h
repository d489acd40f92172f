// Scalar reference for the weight types kvpack computes with: one row of a traits table per type
// (block size and bytes, its exact dequantizer, a quantizer, and the activation type its integer
// dot product needs, as ggml's type traits), ggml's activation quantizers reproduced bit for bit,
// and the dot products and error bounds the SIMD kernels in matmul.cpp are tested against.
// docs/weights.md describes the layouts; quant/blocks.h and quant/*_ref.cpp are their readable
// specification. Code that is generic over types loops over weight_types().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "model/ggml_type.h"
#include "model/quant/blocks.h"

namespace kvpack::model {

// What a weight type's integer dot product multiplies it with.
enum class ActType : uint8_t {
  kF32,   // nothing: float weights meet f32 activations
  kQ8_0,  // 32-value blocks, f16 scale amax / 127, roundf (the 32-value types)
  kQ8_K,  // 256-value blocks, f32 scale, round half to even, sums of 16 (the K-quants, IQ4_XS)
};

struct WeightTypeTraits {
  GgmlType type;
  int block;        // values per block (1 for the float types)
  int block_bytes;  // bytes per block
  ActType act;      // activation blocks of its integer dot product
  bool has_min;     // written x = a - b with a min part b (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)
  // Exactly ggml's dequantization of n values (whole blocks); b (optional) gets the min parts.
  void (*dequantize)(const uint8_t* blocks, float* y, float* b, int64_t n);
  // f32 to blocks (see quant/codecs.h for which are ggml's bytes and which kvpack's own search).
  void (*quantize)(const float* x, uint8_t* blocks, int64_t n);
};

// Every type kvpack computes with: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K,
// Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.
std::span<const WeightTypeTraits> weight_types();
// nullptr for a type kvpack does not compute with.
const WeightTypeTraits* find_weight_type(GgmlType t);
// The row of a supported type (asserts).
const WeightTypeTraits& weight_traits(GgmlType t);
// "F32, F16, ..., IQ4_XS", for error messages.
std::string supported_weight_type_names();

bool is_weight_type(GgmlType t);
// Values per block (1 for the float types) and bytes per block.
int weight_block_size(GgmlType t);
int weight_block_bytes(GgmlType t);
// Bytes of a row of n values; n must be a multiple of the block size.
size_t weight_row_bytes(GgmlType t, int64_t n);

// ---- activations ----

int act_block_size(ActType a);      // 32 (Q8_0), 256 (Q8_K)
size_t act_block_bytes(ActType a);  // 34, 292

// ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref / quantize_row_q8_K_ref, bit for bit (n a
// multiple of the block). Blocks ggml cannot represent (leaving the result undefined) get a NaN
// scale here, so whatever reads them turns NaN rather than silently wrong: a block holding NaN or
// Inf, or (q8_0, q4_0) one whose scale overflows f16 (|x| beyond 127 * 65504 ~ 8.3e6 for q8_0,
// 8 * 65504 for q4_0). A q8_K block whose largest |x| is below ~3.7e-37 (where 127 / max
// overflows) quantizes to zero.
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n);
// The quantizer of activation type a (kQ8_0 or kQ8_K), and its exact dequantization.
void quantize_row_act_ref(ActType a, const float* x, void* y, int64_t n);
void dequantize_row_act_ref(ActType a, const void* y, float* x, int64_t n);

// ---- weights ----

// Any weight type from f32, and exactly ggml's dequantize_row_* / *_to_fp32_row: every product is
// exact in f32, so there is a single correct answer and the SIMD paths must produce it bit for
// bit.
void quantize_row_ref(GgmlType t, const float* x, void* y, int64_t n);
void dequantize_row_ref(GgmlType t, const void* x, float* y, int64_t n);

// Dot products the matmul kernels approximate, evaluated in double (n values):
//  - any weights with f32 activations: sum dequant(w)[j] * x[j]; abs_sum = sum |terms|;
//  - quantized weights with activations xq of the type's ActType (quantize_row_act_ref):
//    sum dequant(w)[j] * dequant(xq)[j], which is ggml's `f64_dequant` and what the integer
//    kernels compute exactly per block before their f32 roundings. abs_sum = sum (|a_j| + |b_j|)
//    |dequant(xq)[j]| with w = a - b split into its scale and min parts (the kernels round the two
//    separately), which is sum |terms| for the types without a min.
double vec_dot_f32_ref(GgmlType t, const void* w, const float* x, int64_t n,
                       double* abs_sum = nullptr);
double vec_dot_act_ref(GgmlType t, const void* w, const void* xq, int64_t n,
                       double* abs_sum = nullptr);
// vec_dot_act_ref for the types whose activations are q8_0.
double vec_dot_q8_ref(GgmlType t, const void* w, const BlockQ8_0* xq, int64_t n,
                      double* abs_sum = nullptr);

// A priori bound on |vec_dot_act_ref(w, act(x)) - vec_dot_f32_ref(w, x)| (exact arithmetic): the
// error that quantizing activations adds to an integer-path matvec output. Each value of an
// activation block moves by at most a step bound times |its weight|:
//  - q8_0 (d = amax / 127, stored as f16): d (0.5 + 2^-14) + 127 |d - f16(d)|: rounding to the
//    grid, the f32 roundings of 1/d and x * (1/d) (127 * 2u < 2^-16), and the f16 rounding of d;
//  - q8_K (d = 1 / fl(-127 / max), f32): |d| (0.5 + 2^-14): the grid, and the roundings of the
//    scale, its inverse and iscale * x (< 260 u); blocks quantized to zero: their largest |x|.
// Zero for F32/F16/BF16.
double q8_activation_error_bound(GgmlType t, const void* w, const float* x, int64_t n);
// The typical size of that error: its standard deviation when each activation's rounding error is
// independent and uniform over its grid step d, sqrt(sum_j w_j^2 d^2 / 12).
double q8_activation_error_rms(GgmlType t, const void* w, const float* x, int64_t n);

}  // namespace kvpack::model
