// Internal: the grid encoders' choice of step (and min) by error. ggml's weight quantizers
// (make_qx_quants, make_qkx2_quants) try a set of scales per block and keep the one with the
// least squared error; the KV formats here do the same, but only among grids that still hold
// every value within half a step (docs/formats.md, "Grid formats: shared rules"), so a search
// never trades the per-value bound for a lower mean error.
//
// Symmetric (q4): codes k in -n..n-1 (q4: -8..7, nibble u = k + 8), x = k * s. Where the caller
// allows it (K role) the stored f16 step s is signed, as ggml's q4_0 d is: the grid's longer side
// (n steps) points at the group's extreme. (V steps stay >= 0: the value kernels fold them into
// unsigned integer weights, attention/cpu/value_weights-inl.h; the longer side is then always
// the negative one.) With a = |s|, the grid covers the group when the extreme on the longer side
// is <= (n + 1/2) a and the largest magnitude on the other side is <= (n - 1/2) a: a >= a_min.
// Candidates run from a_min to the plain step amax / (n - 1) (every value within half a step on the
// codes -(n-1)..n-1 alone), so the chosen step is never above the plain one and the error bound is
// never weaker than its half step. Each candidate's least-squares step for its codes is tried too,
// when it covers.
//
// Asymmetric (q4a, kivi4, kivi2): x = m + k * s, k in 0..L. A grid covers [lo, hi] when
// m - s/2 <= lo and hi <= m + (L + 1/2) s, so s >= (hi - lo) / (L + 1) and m lies in
// [hi - (L + 1/2) s, lo + s/2]. Candidates: steps from that minimum up to the plain fit (m = lo
// rounded down to f16, s = (hi - m) / L), each with the f16 mins nearest the middle of its
// interval and the interval's two ends; the plain fit itself is always a candidate, so the
// search is never worse than it. After each candidate the least-squares grid for its codes is
// tried too, when it still covers.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "base/half.h"
#include "format/quant.h"

namespace kvpack::format {

// Steps tried between the smallest covering one and the plain one (ends included). 16 is past the
// point of return: on Gaussian groups of 32 values 8 and 64 candidates give MSE within 0.5% of 16.
inline constexpr int kStepCandidates = 16;

// Nearest index of x on the grid k * s, clamped to [-n, n - 1]; 0 when s is 0.
inline int round_sym_signed(float x, float s, int n) {
  if (s == 0.0f) return 0;
  const float k = round_half_even(x / s);
  // fmin(fmax(k, -n), n - 1) without the libm calls (NaN gives -n, as fmax's does).
  if (!(k >= static_cast<float>(-n))) return -n;
  return k > n - 1.0f ? n - 1 : static_cast<int>(k);
}

// Squared error of encoding v[i * stride], i < count, on grid k * s (k in -n..n-1), and the
// least-squares step for the same codes (sum x k / sum k^2), which ggml's searches also try.
struct SymTrial {
  double err;
  double refit;
};
inline SymTrial sym_trial(const float* v, int count, size_t stride, float s, int n) {
  double e = 0, xk = 0, kk = 0;
  for (int i = 0; i < count; ++i) {
    const float x = v[i * stride];
    const int k = round_sym_signed(x, s, n);
    const double r = static_cast<double>(x) - static_cast<double>(k) * s;
    e += r * r;
    xk += static_cast<double>(x) * k;
    kk += static_cast<double>(k) * k;
  }
  return {e, kk > 0 ? xk / kk : 0.0};
}

// The stored f16 step for values v[i * stride] (already saturated into f16's range) on the grid
// k * s, k in -n..n-1, minimising the squared error among covering steps; negative only when
// `allow_negative` and the group's extreme is positive.
inline uint16_t search_sym_step(const float* v, int count, size_t stride, int n,
                                bool allow_negative) {
  double neg = 0, pos = 0;  // largest magnitudes below and above zero
  for (int i = 0; i < count; ++i) {
    const double x = v[i * stride];
    if (x < 0) neg = std::fmax(neg, -x);
    if (x > 0) pos = std::fmax(pos, x);
  }
  const double amax = std::fmax(neg, pos);
  if (amax == 0) return 0;
  const bool flip = allow_negative && pos > neg;  // negative step: the n-step side up
  const double longer = flip ? pos : neg, other = flip ? neg : pos;
  const double a_min = std::fmax(longer / (n + 0.5), other / (n - 0.5));
  const double a_plain = f16_to_f32(fit_step(amax, n - 1, n - 0.5));
  const auto covers = [&](double a) { return longer <= (n + 0.5) * a && other <= (n - 0.5) * a; };
  uint16_t best = 0;
  double best_err = INFINITY;
  const auto try_step = [&](uint16_t h) {  // h: |step| as f16
    const uint16_t signed_h = flip ? static_cast<uint16_t>(h | 0x8000u) : h;
    const SymTrial r = sym_trial(v, count, stride, f16_to_f32(signed_h), n);
    if (r.err < best_err) best = signed_h, best_err = r.err;
    return r;
  };
  for (int c = 0; c <= kStepCandidates; ++c) {
    const double a = a_min + (a_plain - a_min) * c / kStepCandidates;
    uint16_t h = f32_to_f16(static_cast<float>(a));
    if (!covers(f16_to_f32(h))) ++h;  // rounded below a_min: the next f16 covers
    const SymTrial r = try_step(h);
    // The least-squares step for these codes, when it still covers and is not above the plain
    // one (it lands exactly on grids like -7..8 that the evenly spaced candidates miss).
    const double refit = flip ? -r.refit : r.refit;
    const uint16_t hr = f32_to_f16(static_cast<float>(refit));
    if (refit > 0 && covers(f16_to_f32(hr)) && f16_to_f32(hr) <= a_plain) try_step(hr);
  }
  KVPACK_DASSERT(covers(std::fabs(f16_to_f32(best))), "step {} does not cover [{}, {}]",
                 f16_to_f32(best), -neg, pos);
  return best;
}

// Squared error of encoding v[i * stride], i < count, on grid m + k * s (k in 0..levels), and
// the least-squares (step, min) for the same codes (a line fit of x against k).
struct AsymTrial {
  double err;
  double step;  // NaN when every code is equal
  double min;
};
inline AsymTrial asym_trial(const float* v, int count, size_t stride, float m, float s,
                            int levels) {
  double e = 0, sk = 0, skk = 0, sx = 0, sxk = 0;
  for (int i = 0; i < count; ++i) {
    const float x = v[i * stride];
    const int k = round_asym(x, m, s, levels);
    const double r = static_cast<double>(x) - (static_cast<float>(k) * s + m);
    e += r * r;
    sk += k, skk += static_cast<double>(k) * k, sx += x, sxk += static_cast<double>(x) * k;
  }
  const double det = count * skk - sk * sk;
  if (det <= 0) return {e, NAN, NAN};
  const double step = (count * sxk - sk * sx) / det;
  return {e, step, (sx - step * sk) / count};
}

// The smallest f16 >= v (v within f16's range).
inline uint16_t f16_round_up(float v) {
  const uint16_t h = f16_round_down(-v);
  return static_cast<uint16_t>(h ^ 0x8000u);
}

// Stored step and min for values v[i * stride] in [lo, hi] (saturated) on grid m + k * s,
// k in 0..levels, minimising the squared error among covering grids.
inline AsymGrid search_asym(const float* v, int count, size_t stride, float lo, float hi,
                            int levels) {
  const AsymGrid plain = fit_asym(lo, hi, levels);
  if (hi <= lo) return plain;  // one value: the plain grid decodes it exactly
  const double s_min = (static_cast<double>(hi) - lo) / (levels + 1);
  const double s_plain = f16_to_f32(plain.step);
  // A grid (s, m) covers [lo, hi] when m - s/2 <= lo and hi <= m + (levels + 1/2) s.
  const auto covers = [&](double s, double m) {
    return s <= s_plain && m - 0.5 * s <= lo && hi <= m + (levels + 0.5) * s;
  };
  AsymGrid best = plain;
  double best_err = INFINITY;
  const auto try_grid = [&](uint16_t h, uint16_t mh) {
    const AsymTrial r = asym_trial(v, count, stride, f16_to_f32(mh), f16_to_f32(h), levels);
    if (r.err < best_err) best = {h, mh}, best_err = r.err;
    return r;
  };
  const auto try_refit = [&](const AsymTrial& r) {  // the least-squares grid, if it covers
    if (std::isnan(r.step) || r.step <= 0) return;
    const uint16_t hr = f32_to_f16(static_cast<float>(r.step));
    const uint16_t mr = f32_to_f16(static_cast<float>(r.min));
    if (covers(f16_to_f32(hr), f16_to_f32(mr))) try_grid(hr, mr);
  };
  try_refit(try_grid(plain.step, plain.min));
  for (int c = 0; c < kStepCandidates; ++c) {
    const uint16_t h =
        f32_to_f16(static_cast<float>(s_min + (s_plain - s_min) * c / kStepCandidates));
    const double s = f16_to_f32(h);
    const double m_lo = hi - (levels + 0.5) * s, m_hi = lo + 0.5 * s;  // covering mins
    if (!(m_lo <= m_hi)) continue;
    // Both ends of the covering interval and its middle, as f16 (skipped where f16's spacing
    // leaves no value near them inside the interval).
    const uint16_t ms[3] = {f16_round_up(static_cast<float>(m_lo)),
                            f32_to_f16(static_cast<float>(0.5 * (m_lo + m_hi))),
                            f16_round_down(static_cast<float>(m_hi))};
    for (const uint16_t mh : ms) {
      if (covers(s, f16_to_f32(mh))) try_refit(try_grid(h, mh));
    }
  }
  return best;
}

}  // namespace kvpack::format
