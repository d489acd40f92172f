#include "attention/merge.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvpack::attention::detail {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

constexpr double kLog2e = 1.4426950408889634;

// 2^(m - max) (states are in log2 units), 0 for an empty state.
double weight_of(float m, double max) {
  return m == kNegInf ? 0.0 : std::exp2(static_cast<double>(m) - max);
}

}  // namespace

void merge_rows(const format::Codec& v_codec, int head, const Partial* parts, int n_parts,
                const Partial& tail, int row0, int rows, const float* sinks,
                const MergeStaging& staging, float* out) {
  const size_t af = parts[0].acc_floats;
  const int dv = v_codec.head_dim();
  float* merge = staging.merge;
  for (int r = 0; r < rows; ++r) {
    const int pr = row0 + r;
    double mx = tail.m[pr];
    const double sink = sinks != nullptr ? sinks[r] * kLog2e : 0.0;  // natural-log units
    if (sinks != nullptr) mx = std::max(mx, sink);
    for (int i = 0; i < n_parts; ++i) mx = std::max(mx, static_cast<double>(parts[i].m[pr]));
    double denom = tail.l[pr] * weight_of(tail.m[pr], mx);
    if (sinks != nullptr) denom += std::exp2(sink - mx);
    for (int i = 0; i < n_parts; ++i) denom += parts[i].l[pr] * weight_of(parts[i].m[pr], mx);
    const double inv = denom > 0 ? 1.0 / denom : 0.0;
    float* staged = merge + r * af;
    std::fill(staged, staged + af, 0.0f);
    for (int i = 0; i < n_parts; ++i) {
      const float c = static_cast<float>(weight_of(parts[i].m[pr], mx) * inv);
      if (c == 0.0f) continue;
      const float* a = parts[i].acc + pr * af;
      for (size_t j = 0; j < af; ++j) staged[j] += c * a[j];
    }
    staging.tail_factor[r] = static_cast<float>(weight_of(tail.m[pr], mx) * inv);
  }
  v_codec.finish(head, merge, rows, out);
  for (int r = 0; r < rows; ++r) {
    const float c = staging.tail_factor[r];
    if (c == 0.0f) continue;
    const float* a = tail.acc + (row0 + r) * tail.acc_floats;
    for (int j = 0; j < dv; ++j) out[r * dv + j] += c * a[j];
  }
}

}  // namespace kvpack::attention::detail
