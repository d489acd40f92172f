// Query rounding for the integer-code K kernels (int_query.h): a scalar reference and the same
// operations on SIMD vectors per Highway target, bit-exact with it (every lane gets the
// reference's division, clamp and rounding; the group's max and code sum are exact in any order).
#include "base/hwy_config.h"  // first: the Highway targets every kvpack kernel is built for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/int_query.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>

#include "attention/int_query.h"
#include "format/quant.h"

#ifndef KVPACK_ATTENTION_INT_QUERY_ONCE_
#define KVPACK_ATTENTION_INT_QUERY_ONCE_
namespace kvpack::attention::detail {

// Channel j's code from q / s (s > 0): NaN (a NaN channel, or Inf / Inf) gives 0; clamping
// before rounding gives the same code as after (127.5 and up round above 127). The rounding is
// format::round_half_even's two additions (nearbyint for these magnitudes), which the SIMD
// path does on whole vectors.
inline float code_of(float k) {
  k = k == k ? std::clamp(k, -127.0f, 127.0f) : 0.0f;
  return format::round_half_even(k);
}

// Where a prepared row's parts sit (int_query.h's layout).
struct RowParts {
  int8_t* codes;
  float* fcodes;
  float* scale;
  int32_t* sum;
  RowParts(const IntQueryLayout& l, uint8_t* row)
      : codes(reinterpret_cast<int8_t*>(row + l.codes())),
        fcodes(reinterpret_cast<float*>(row + l.floats())),
        scale(reinterpret_cast<float*>(row + l.scales())),
        sum(reinterpret_cast<int32_t*>(row + l.sums())) {}
};

// Channels [j0, j1) of a row with scale s, one at a time; returns the sum of their codes.
inline int32_t round_channels(const float* q, float s, int j0, int j1, const RowParts& out) {
  int32_t total = 0;
  for (int j = j0; j < j1; ++j) {
    const float k = s > 0 ? code_of(q[j] / s) : 0.0f;
    out.codes[j] = static_cast<int8_t>(k);
    out.fcodes[j] = k;
    total += static_cast<int32_t>(k);
  }
  return total;
}

// Max |q[j]| over [j0, j1), NaN channels left out.
inline float group_amax(const float* q, int j0, int j1) {
  float amax = 0;
  for (int j = j0; j < j1; ++j) amax = std::fabs(q[j]) > amax ? std::fabs(q[j]) : amax;
  return amax;
}

}  // namespace kvpack::attention::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void QuantizeQuery(const IntQueryLayout& l, const float* q, uint8_t* row) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  const RowParts out(l, row);
  for (int g = 0; g < l.groups(); ++g) {
    const int j0 = g * l.group, j1 = j0 + l.group;
    int j = j0;
    auto vmax = hn::Zero(df);
    for (; j + N <= j1; j += N) {
      const auto a = hn::Abs(hn::LoadU(df, q + j));
      vmax = hn::Max(vmax, hn::IfThenZeroElse(hn::IsNaN(a), a));
    }
    float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    amax = std::max(amax, group_amax(q, j, j1));
    const float s = amax / 127.0f;
    out.scale[g] = s;
    int32_t total = 0;
    j = j0;
    if (s > 0) {
      const auto vs = hn::Set(df, s), lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
      const auto magic = hn::Set(df, format::kRoundHalfEvenMagic);
      auto vsum = hn::Zero(di);
      for (; j + N <= j1; j += N) {
        auto k = hn::Div(hn::LoadU(df, q + j), vs);
        k = hn::IfThenZeroElse(hn::IsNaN(k), hn::Min(hn::Max(k, lo), hi));
        k = hn::Sub(hn::Add(k, magic), magic);
        const auto ki = hn::ConvertTo(di, k);
        hn::StoreU(k, df, out.fcodes + j);
        hn::StoreU(hn::DemoteTo(d8, ki), d8, out.codes + j);
        vsum = hn::Add(vsum, ki);
      }
      total = hn::GetLane(hn::SumOfLanes(di, vsum));
    }
    out.sum[g] = total + round_channels(q, s, j, j1, out);  // the channels past the vectors
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvpack::attention::detail {

HWY_EXPORT(QuantizeQuery);

void quantize_query(const IntQueryLayout& l, const float* q, uint8_t* row) {
  HWY_DYNAMIC_DISPATCH(QuantizeQuery)(l, q, row);
}

void quantize_query_reference(const IntQueryLayout& l, const float* q, uint8_t* row) {
  const RowParts out(l, row);
  for (int g = 0; g < l.groups(); ++g) {
    const int j0 = g * l.group, j1 = j0 + l.group;
    const float s = group_amax(q, j0, j1) / 127.0f;
    out.scale[g] = s;
    out.sum[g] = round_channels(q, s, j0, j1, out);
  }
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
