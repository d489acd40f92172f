// Internal to src/model: the scalar codec of each weight type, which quant_ref.cpp's traits table
// points at. One pair per type:
//   dequantize_X(blocks, y, b, n): n values (whole blocks), exactly ggml's dequantize_row_X
//     (every product is exact in f32, so there is one right answer). When b is not null it
//     receives each value's min part: ggml writes the types with a min as x = a - b (a = scale
//     times quant, b = the block's min), and the kernels round a and b separately, so their
//     error bounds need |a| and |b|, not only |x|.
//   quantize_X(x, blocks, n): f32 to blocks. Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 give ggml's reference
//     bytes; the others are kvpack's own least-squares searches (quant/fit.h), checked against
//     the reconstruction error of ggml's. Blocks ggml leaves undefined (NaN/Inf inside, or a scale
//     beyond f16) get a NaN scale, so whatever reads them turns NaN instead of silently wrong.
#pragma once

#include <cstdint>

#include "model/quant/blocks.h"

namespace kvpack::model::codec {

#define KVPACK_WEIGHT_CODEC(name)                                               \
  void dequantize_##name(const uint8_t* blocks, float* y, float* b, int64_t n); \
  void quantize_##name(const float* x, uint8_t* blocks, int64_t n)

KVPACK_WEIGHT_CODEC(f32);
KVPACK_WEIGHT_CODEC(f16);
KVPACK_WEIGHT_CODEC(bf16);
KVPACK_WEIGHT_CODEC(q8_0);
KVPACK_WEIGHT_CODEC(q4_0);
KVPACK_WEIGHT_CODEC(q4_1);
KVPACK_WEIGHT_CODEC(q5_0);
KVPACK_WEIGHT_CODEC(q5_1);
KVPACK_WEIGHT_CODEC(iq4_nl);
KVPACK_WEIGHT_CODEC(q2_k);
KVPACK_WEIGHT_CODEC(q3_k);
KVPACK_WEIGHT_CODEC(q4_k);
KVPACK_WEIGHT_CODEC(q5_k);
KVPACK_WEIGHT_CODEC(q6_k);
KVPACK_WEIGHT_CODEC(iq4_xs);

#undef KVPACK_WEIGHT_CODEC

// Helpers the codec files share.
bool all_finite(const float* x, int n);
bool f16_finite(uint16_t h);
uint16_t f16_nan();
// ggml's nearest_int: round half to even (|v| < 2^22).
int nearest(float v);

}  // namespace kvpack::model::codec
