// Weight-matrix products for the forward pass: y = W x for one token (decode) and Y = X W^T for a
// batch of tokens (prefill), parallel over output rows, SIMD with runtime dispatch (Highway:
// SSE4/AVX2/AVX-512/AVX-512 VNNI on x86, NEON/SVE on Arm), each beside a scalar reference.
//
// Numerics (docs/weights.md has the derivation of every tolerance):
//  - F32/F16/BF16 weights, and quantized ones under QuantDot::kF32: weights are dequantized
//    exactly to f32 and multiplied with the f32 activations; only the f32 sum rounds.
//  - Quantized weights under QuantDot::kInt8 (the default, as ggml): each token's activations
//    are first quantized to the type's activation blocks (q8_0 for the 32-value types, q8_K for
//    the K-quants and IQ4_XS; exactly ggml's reference quantizers), then every block's dot
//    product is an exact integer sum scaled in f32. Each activation moves by at most about half
//    a grid step of its block, which bounds the extra error (q8_activation_error_bound).
//  - Non-finite activations: with f32 dots they propagate as IEEE arithmetic does (Inf may give
//    Inf or NaN); with integer dots a block holding NaN or Inf, or (q8_0) a value beyond +-8.3e6
//    (where the f16 scale overflows, as in ggml), makes every output NaN.
#pragma once

#include <cstdint>

#include "model/quant_ref.h"
#include "model/weights.h"

namespace kvpack {
class ThreadPool;
}

namespace kvpack::model {

// How quantized weights meet f32 activations (F32/F16/BF16 weights always use f32 dots).
enum class QuantDot {
  kInt8,  // activations quantized to q8_0 / q8_K, integer block dots (VNNI where available)
  kF32,   // weights dequantized to f32 on the fly
};

// y[rows] = W x[cols].
void matvec(const WeightMatrix& w, const float* x, float* y, ThreadPool& pool,
            QuantDot dot = QuantDot::kInt8);

// y[n_tokens][rows] = x[n_tokens][cols] W^T: row t of y is matvec of row t of x, bit for bit
// (every output is computed with the same operation order whatever the batch size).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            QuantDot dot = QuantDot::kInt8);

// Scalar references (double accumulation; activations quantized with quantize_row_act_ref
// under kInt8). The readable specification of matvec/matmul.
void matmul_ref(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                QuantDot dot = QuantDot::kInt8);

// The activation quantizer of the integer path (SIMD), writing ggml's q8_0 blocks: bit for bit
// quantize_row_q8_0_ref. n is a multiple of 32.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);

// kvpack's name of the SIMD target the kernels dispatch to now ("avx512-vnni", "avx2-novnni",
// ...; base/simd_target.h).
const char* matmul_target();

}  // namespace kvpack::model
