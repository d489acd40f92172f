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
  // VNNI layout (AVX-512 VNNI target only): blocks in pairs with their 4-value groups
  // interleaved, int32 lane 2k holding group k of the even block and lane 2k+1 group k of the
  // odd one, so one 512-bit vector holds two blocks and a broadcast f16 scale pair matches it.
  int8_t* qs_pairs = nullptr;     // [n_tokens][n_blocks / 2][64]
  float* d_lanes = nullptr;       // [n_tokens][n_blocks / 2][16]  scale of each lane's block
  int32_t* bias_lanes = nullptr;  // [n_tokens][n_blocks / 2][16]  -offset * sum of its 4 quants
};

struct MatmulJob {
  const WeightMatrix* w = nullptr;
  const float* x = nullptr;           // [n_tokens][w->cols]
  const ActivationsQ8* xq = nullptr;  // set when Q8_0/Q4_0 use integer dots
  int64_t n_tokens = 0;
  float* y = nullptr;  // [n_tokens][w->rows]
};

}  // namespace kvpack::model
