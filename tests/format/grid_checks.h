// Shared by the grid-format tests (fp8, q8/q4/q4a, kivi): the inputs, the byte-level reads of
// stored f16 fields, and the theory's limits on a stored step, so each test states its bound
// once and reads the block through the layout docs/formats.md documents.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "base/half.h"
#include "inputs.h"
#include "kvpack/format.h"

namespace kvpack::testing {

inline constexpr int kDims[] = {8, 64, 96, 128, 256};
inline constexpr int kPages[] = {16, 32, 256};

// The standard battery plus magnitudes that push the stored f16 steps to their ends: tiny
// values give subnormal (or zero-rounded) steps, large ones steps in the hundreds.
inline std::vector<Rows> grid_inputs(int n, int d, uint64_t seed) {
  std::vector<Rows> all = standard_inputs(n, d, seed);
  Rows tiny = gaussian_rows(n, d, seed + 3, 1e-6);
  tiny.name = "tiny (subnormal steps)";
  all.push_back(tiny);
  Rows big = gaussian_rows(n, d, seed + 4, 3000.0);
  big.name = "large";
  all.push_back(big);
  return all;
}

// The f16 stored at byte offset `off` of a block (little-endian, as documented).
inline float f16_at(const std::vector<uint8_t>& block, size_t off) {
  uint16_t h;
  std::memcpy(&h, block.data() + off, sizeof h);
  return f16_to_f32(h);
}

// The largest step the theory allows for a grid of `top` steps over `range`: the nearest f16
// to range/top (relative error 2^-11, or 2^-25 absolute when subnormal), moved up at most one
// f16 ulp (2^-10 relative, 2^-24 absolute).
inline double max_step(double range, double top) {
  return range / top * (1 + 0x1p-10) + 0x1p-24;
}

// The range a plain asymmetric fit spans over [lo, hi]: hi minus lo rounded down to f16 (at
// most one f16 ulp, 2^-10 relative or 2^-24 absolute, below lo). The encoders' searched steps
// are never larger than that fit's (format/step_search.h).
inline double plain_asym_range(double lo, double hi) {
  return hi - lo + 0x1p-10 * std::fabs(lo) + 0x1p-24;
}

// Squared error of the plain asymmetric fit of x[i * stride], i < n (already saturated), with
// `levels` + 1 levels: min = lo rounded down to f16, step the nearest f16 to (hi - min) / levels
// (one ulp up if that leaves hi uncovered), codes rounded to nearest: the encoders' fit before
// they searched by error, restated here from docs/formats.md.
inline double plain_asym_sse(const float* x, int n, size_t stride, int levels) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::fmin(lo, x[i * stride]), hi = std::fmax(hi, x[i * stride]);
  uint16_t mh = f32_to_f16(lo);
  if (f16_to_f32(mh) > lo) {
    mh = (mh & 0x7fffu) == 0 ? uint16_t{0x8001}
                             : static_cast<uint16_t>(mh & 0x8000u ? mh + 1 : mh - 1);
  }
  const float m = f16_to_f32(mh);
  const double range = static_cast<double>(hi) - m;
  uint16_t sh = f32_to_f16(static_cast<float>(range / levels));
  if (range > (levels + 0.5) * f16_to_f32(sh)) ++sh;
  const float s = f16_to_f32(sh);
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const float v = x[i * stride];
    const float k = s == 0 ? 0 : std::fmin(std::fmax(std::nearbyint((v - m) / s), 0.0f), levels);
    const double r = v - static_cast<double>(k * s + m);
    e += r * r;
  }
  return e;
}

// Input values as the formats see them: NaN -> 0, beyond f16's range -> +-65504.
inline float saturated(float x) {
  if (std::isnan(x)) return 0.0f;
  return std::fmax(-kF16Max, std::fmin(kF16Max, x));
}

// Encodes `in` (all its tokens) and decodes it back; returns the block.
inline std::vector<uint8_t> round_trip(const format::Codec& codec, const Rows& in,
                                       std::vector<float>& out) {
  std::vector<uint8_t> block(codec.head_bytes(), 0xa5);
  codec.encode(0, in.x.data(), in.n, block.data());
  out.assign(in.x.size(), NAN);
  codec.decode(0, block.data(), in.n, out.data());
  return block;
}

// Calls check(codec, input, block, decoded) for every head dim, page size and input of the
// battery that `id` serves in `role`.
using RoundTripCheck = std::function<void(const format::Codec&, const Rows&,
                                          const std::vector<uint8_t>&, const std::vector<float>&)>;
inline void for_each_round_trip(format::FormatId id, format::Role role,
                                const RoundTripCheck& check) {
  for (int d : kDims) {
    for (int t : kPages) {
      auto codec = format::make_codec(id, format::CodecConfig{role, d, t, 1, 0});
      for (const Rows& in : grid_inputs(t, d, static_cast<uint64_t>(d * 1000 + t))) {
        SCOPED_TRACE(std::string(format::info(id).name) + " d=" + std::to_string(d) +
                     " page=" + std::to_string(t) + " " + in.name);
        std::vector<float> out;
        const std::vector<uint8_t> block = round_trip(*codec, in, out);
        check(*codec, in, block, out);
      }
    }
  }
}

}  // namespace kvpack::testing
