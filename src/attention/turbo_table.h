// Internal: turbo4's 16 Lloyd-Max centroids as an int8 table for the int8 dot-product K kernel.
// The scale is chosen (over the integer images 96..127 of the largest centroid) to minimise the
// largest relative rounding error over the centroids; that error bounds the kernel's extra
// relative error per key element (KernelInfo::key_rel_error).
#pragma once

#include <cstdint>

namespace kvpack::attention::detail {

struct TurboTable {
  int8_t codes[16];      // round(c_i / scale)
  uint8_t biased[16];    // codes + 128 (the unsigned operand of VPDPBUSD)
  float centroids[16];   // the exact centroids (V kernel)
  float scale = 0;       // c_i ~= codes[i] * scale
  double rel_error = 0;  // max_i |codes[i] * scale - c_i| / |c_i|
};

// The table for head dim d (cached; thread-safe).
const TurboTable& turbo4_table(int d);

}  // namespace kvpack::attention::detail
