// Test support: the tests' own statement of which kernel serves each format, role and geometry,
// and of the roundings it applies (int8 query, integer value weights, int8 centroid table).
// Tolerances are derived from these figures, never from what the kernels report about
// themselves; KernelInfo.* pins kernel_info() to them on every SIMD target.
#pragma once

#include "kvpack/attention.h"
#include "kvpack/format.h"

namespace kvpack::testing {

// The int8 image of a TurboQuant codebook, built as its spec says (attention/turbo_table.h):
// scale = c_max / top for the integer top in 96..127 that minimises (first, on ties) the largest
// relative error max_i |round(c_i / scale) scale - c_i| / |c_i|. Computed here from
// format::codebook; index i of the 16 entries is centroid i mod 2^bits.
struct Int8Table {
  int codes[16];
  float scale = 0;
  double rel_error = 0;
};
Int8Table int8_table(int head_dim, int bits);
inline double int8_table_error(int head_dim, int bits) {
  return int8_table(head_dim, bits).rel_error;
}

// MSE code bits of a TurboQuant format (2 for turbo2 and turbo3_qjl, ...); 0 for the others.
int turbo_mse_bits(format::FormatId id);

// What kernel_info(codec, params) must say, name without the " (TARGET)" suffix. Where no
// specialised kernel serves the geometry, the codec kernels ("codec ops", all figures 0).
attention::KernelInfo expected_kernel(const format::Codec& codec,
                                      const attention::Params& params = {});

}  // namespace kvpack::testing
