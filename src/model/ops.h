// The small per-token operations of the forward pass besides matmul: RMSNorm, SiLU, SwiGLU, GeGLU,
// softmax, and embedding lookup. Each has a SIMD version (Highway, runtime dispatch) and a scalar
// reference; rows are short (the model width), so these matter far less than matmul.
#pragma once

#include <cstdint>

#include "model/weights.h"

namespace kvpack::model {

// y[n] = x[n] / sqrt(mean(x^2) + eps) * weight[n], as ggml's rms_norm followed by the weight
// multiply (weight may be null: no multiply). y may be x. The sum of squares is kept in f32 with
// SIMD lanes (double in the reference), so |x| must stay below ~1e19 (x^2 finite).
void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y);
void rms_norm_ref(const float* x, const float* weight, float eps, int64_t n, float* y);

// y[n] = silu(x) = x / (1 + exp(-x)). y may be x. silu(-inf) is NaN, as in ggml and IEEE.
void silu(const float* x, int64_t n, float* y);
void silu_ref(const float* x, int64_t n, float* y);

// y[n] = silu(gate) * up: the gated FFN activation of Llama-family models. y may alias either.
void swiglu(const float* gate, const float* up, int64_t n, float* y);
void swiglu_ref(const float* gate, const float* up, int64_t n, float* y);

// y[n] = gelu(gate) * up with GELU's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x +
// 0.044715 x^3))): the gated FFN activation of Gemma. y may alias either.
void geglu(const float* gate, const float* up, int64_t n, float* y);
void geglu_ref(const float* gate, const float* up, int64_t n, float* y);

// x[n] = softmax(x[n]) in place. -inf entries get probability 0; if any entry is NaN or +inf, or
// all are -inf, every output is NaN (an upstream bug made visible, not hidden).
void softmax(float* x, int64_t n);
void softmax_ref(float* x, int64_t n);

// out[i][w.cols] = row ids[i] of w dequantized (bit for bit dequantize_row_ref): the token
// embedding lookup. Throws Error naming the tensor for an id outside [0, w.rows).
void get_rows(const WeightMatrix& w, const int32_t* ids, int64_t n_ids, float* out);

}  // namespace kvpack::model
