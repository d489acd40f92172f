// Internal: how the grid formats (fp8, q8, q4, q4a, kivi4, kivi2) turn a group's range into a
// stored f16 step (and min), and round values onto the grid. One place for the maths the error
// bounds in docs/formats.md and the tests rest on.
//
// Theory. A grid with stored step s represents k*s for integer k (symmetric: |k| <= top;
// asymmetric: m + k*s for 0 <= k <= top). Rounding x to the nearest point errs by at most s/2
// while x lies within half a gap of the grid's ends. We store s as the nearest f16 to
// range/top (ggml's d) and quantize against that stored s (ggml divides by the unrounded d),
// so the half-step bound holds for the stored value itself. When the nearest f16 is normal it
// is within a factor 2^-11 of range/top, so range/s <= top / (1 - 2^-11) < top + 1/2 for
// every top below 1023: nothing is clamped by more than half a step. When it is subnormal or zero
// the relative error can be large, so fit_step() then moves s up one f16 ulp, which always
// covers the range (s + ulp >= range/top + 2^-25).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/error.h"
#include "base/half.h"

namespace kvpack::format {

// Every stored scale and min is f16, so inputs are first brought into f16's range: NaN -> 0,
// finite values beyond +-65504 and +-Inf -> +-65504. A saturated value then sets its group's
// step like any other (the cache rejects non-finite appends before this point).
inline float saturate_input(float x) {
  if (std::isnan(x)) return 0.0f;
  return std::clamp(x, -kF16Max, kF16Max);
}

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return f16_to_f32(h);
}

inline void store_f16(uint8_t* p, uint16_t h) {
  std::memcpy(p, &h, sizeof h);
}

// Zeroes a head block's alignment padding (payload..head_bytes), so equal inputs give equal
// blocks byte for byte (docs/formats.md: blocks are zero-padded to 64 bytes).
inline void zero_padding(uint8_t* block, size_t payload, size_t head_bytes) {
  std::memset(block + payload, 0, head_bytes - payload);
}

// The stored f16 step of a grid whose top point is top*s and which must cover magnitudes up to
// `range` (>= 0, at most 2 * 65504): the nearest f16 to range/top, moved up one ulp when
// range > cover*s, where cover = top plus half the grid's gap at its top (1/2 for integer
// grids, 16 for e4m3's 448). 0 only when range is 0.
inline uint16_t fit_step(double range, double top, double cover) {
  if (range <= 0) return 0;
  uint16_t s = f32_to_f16(static_cast<float>(range / top));
  if (range > cover * f16_to_f32(s)) ++s;  // subnormal or zero step: see the theory above
  KVPACK_DASSERT(range <= cover * f16_to_f32(s), "step {} does not cover {}", f16_to_f32(s), range);
  return s;
}

// The largest f16 <= v (v within f16's range). Rounding an asymmetric grid's min down keeps
// every value at or above the grid's first point, whatever f16 does to the min.
inline uint16_t f16_round_down(float v) {
  uint16_t h = f32_to_f16(v);
  if (f16_to_f32(h) > v) {
    if ((h & 0x7fffu) == 0) return 0x8001u;  // +-0 above a tiny negative v: -2^-24
    h = (h & 0x8000u) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
  }
  return h;
}

// Stored step and min of an asymmetric grid m + k*s, 0 <= k <= levels, covering [lo, hi].
struct AsymGrid {
  uint16_t step;
  uint16_t min;
};

inline AsymGrid fit_asym(float lo, float hi, int levels) {
  const uint16_t m = f16_round_down(lo);
  const double range = static_cast<double>(hi) - f16_to_f32(m);  // exact in double
  return {fit_step(range, levels, levels + 0.5), m};
}

// v rounded to the nearest integer, ties to even: std::nearbyint in the default rounding mode for
// |v| < 2^22, with two additions instead of a libm call (baseline x86-64 has no rounding
// instruction; the grid encoders round every value for every candidate step they try). Beyond
// 2^22 the result keeps v's sign and a magnitude past every grid's clamp, so a clamped index is
// the same as nearbyint's.
inline constexpr float kRoundHalfEvenMagic = 12582912.0f;  // 1.5 * 2^23: float spacing 1
inline float round_half_even(float v) {
  return (v + kRoundHalfEvenMagic) - kRoundHalfEvenMagic;
}

// Nearest symmetric grid index of x for stored step s, clamped to [-top, top]; 0 when s is 0.
inline int round_sym(float x, float s, int top) {
  if (s == 0.0f) return 0;
  const float k = round_half_even(x / s);
  return static_cast<int>(std::clamp(k, static_cast<float>(-top), static_cast<float>(top)));
}

// Nearest asymmetric grid index of x for stored step s and min m, clamped to [0, levels].
inline int round_asym(float x, float m, float s, int levels) {
  if (s == 0.0f) return 0;
  const float k = round_half_even((x - m) / s);
  return static_cast<int>(std::clamp(k, 0.0f, static_cast<float>(levels)));
}

}  // namespace kvpack::format
