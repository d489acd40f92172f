// The activation quantizers of the integer dot products, ggml's reference ones byte for byte:
// q8_0 (the 32-value types) and q8_K (the 256-value types). Declared in model/quant_ref.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/half.h"
#include "model/quant/codecs.h"
#include "model/quant_ref.h"

namespace kvpack::model {

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  codec::quantize_q8_0(x, reinterpret_cast<uint8_t*>(y), n);
}

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  codec::quantize_q4_0(x, reinterpret_cast<uint8_t*>(y), n);
}

void quantize_row_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n) {
  KVPACK_ASSERT(n % kQK == 0, "n = {}", n);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    BlockQ8_K& blk = y[b];
    // The signed value of largest magnitude (the first on ties) maps to -127.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    std::memset(blk.qs, 0, sizeof(blk.qs));
    std::memset(blk.bsums, 0, sizeof(blk.bsums));
    if (!codec::all_finite(x, kQK)) {
      blk.d = NAN;
      continue;
    }
    const float iscale = -127.0f / max;
    // All zero, or so small (below ~4e-37) that 127 / max overflows: zero, as ggml's amax == 0.
    if (amax == 0.0f || !std::isfinite(iscale)) {
      blk.d = 0.0f;
      continue;
    }
    for (int j = 0; j < kQK; ++j) {
      // ggml's nearest_int: half to even; |iscale * x| <= 127 (+ rounding), so min(127) only
      // guards the top.
      blk.qs[j] = static_cast<int8_t>(std::min(127, codec::nearest(iscale * x[j])));
    }
    for (int g = 0; g < kQK / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += blk.qs[16 * g + j];
      blk.bsums[g] = static_cast<int16_t>(sum);
    }
    blk.d = 1.0f / iscale;  // as ggml: not max / -127, which can differ in the last bit
  }
}

}  // namespace kvpack::model
