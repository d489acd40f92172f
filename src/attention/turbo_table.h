// Internal: a TurboQuant codebook's 2^b Lloyd-Max centroids (b = 1..4) as an int8 table for the
// int8 dot-product kernels. The scale is chosen (over the integer images 96..127 of the largest
// centroid) to minimise the largest relative rounding error over the centroids; that error
// bounds the kernels' extra relative error per element (KernelInfo::key_rel_error,
// value_rel_error). Entries past 2^b repeat the table (index & (2^b - 1)).
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

// The table for head dim d and b-bit codes (cached; thread-safe).
const TurboTable& turbo_table(int d, int bits);
inline const TurboTable& turbo4_table(int d) {
  return turbo_table(d, 4);
}

}  // namespace kvpack::attention::detail
