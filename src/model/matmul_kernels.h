// What matmul.cpp hands to the per-target kernels of matmul-inl.h (internal to src/model).
#pragma once

#include <cstdint>

#include "model/weights.h"

namespace kvpack::model {

// Tokens' activations quantized to q8_0 for the integer kernels. Per token, n_blocks counts the
// 32-value blocks rounded up to an even number (the VNNI kernel reads blocks in pairs); padding
// blocks are zero. Quantization is ggml's quantize_row_q8_0_ref, so qs and d are its bytes.
struct ActivationsQ8 {
  int64_t n_blocks = 0;
  int8_t* qs = nullptr;  // [n_tokens][n_blocks * 32]
  float* d = nullptr;    // [n_tokens][n_blocks]   f16 scale, widened
  // VNNI layout (AVX-512 VNNI target only): each block's scale and its offset correction spread
  // over the 8 int32 lanes the block's dot product occupies.
  float* d8 = nullptr;       // [n_tokens][n_blocks][8]
  int32_t* bias8 = nullptr;  // [n_tokens][n_blocks][8] = -(offset / 8) * sum(qs of the block)
};

struct MatmulJob {
  const WeightMatrix* w = nullptr;
  const float* x = nullptr;           // [n_tokens][w->cols]
  const ActivationsQ8* xq = nullptr;  // set when Q8_0/Q4_0 use integer dots
  int64_t n_tokens = 0;
  float* y = nullptr;  // [n_tokens][w->rows]
};

}  // namespace kvpack::model
