// The normalized Walsh-Hadamard transform of the TurboQuant rotation (rotation.h), per Highway
// target. Bit-exact with the scalar reference (walsh_hadamard_reference): the stages run in the
// same order (h = 1, 2, 4, ...) and every element gets the same operations on the same operands
// (a + b for the lower partner, a - b for the upper one), only several at a time:
// - stages with h >= N lanes: butterflies between whole vectors h floats apart;
// - stages with h < N: within one vector, the partner lane (lane ^ h) by a table lookup, then
//   the sum kept where bit h of the lane is clear and the difference where it is set.
// A decode step rotates every query row (turbo keys) and every output row (turbo values), so this
// is part of the fixed cost of an attention call at any context.
#include "base/hwy_config.h"  // first: the Highway targets every kvpack kernel is built for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "format/hadamard.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>

#include "format/rotation.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::format {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void WalshHadamard(float* x, int n) {
  const hn::ScalableTag<float> d;
  const int N = static_cast<int>(hn::Lanes(d));
  if (N == 1 || n < N) {  // vectors wider than the block: the reference
    walsh_hadamard_reference(x, n);
    return;
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
#if HWY_TARGET != HWY_SCALAR
  const hn::RebindToSigned<decltype(d)> di;
  // Stages h < N on each vector in turn (N is a power of two, so every stage fits).
  const auto lane = hn::Iota(di, 0);
  for (int i = 0; i < n; i += N) {
    auto v = hn::LoadU(d, x + i);
    for (int h = 1; h < N; h *= 2) {
      const auto partner =
          hn::TableLookupLanes(v, hn::IndicesFromVec(d, hn::Xor(lane, hn::Set(di, h))));
      const auto upper = hn::RebindMask(d, hn::Ne(hn::And(lane, hn::Set(di, h)), hn::Zero(di)));
      // Lower lane j: x[j] + x[j + h]; upper lane j + h: x[j] - x[j + h] (partner - v).
      v = hn::IfThenElse(upper, hn::Sub(partner, v), hn::Add(v, partner));
    }
    if (N == n) v = hn::Mul(v, hn::Set(d, scale));
    hn::StoreU(v, d, x + i);
  }
  if (N == n) return;
#endif
  for (int h = N; h < n; h *= 2) {
    const bool last = 2 * h == n;  // the last stage also scales
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; j += N) {
        const auto a = hn::LoadU(d, x + j);
        const auto b = hn::LoadU(d, x + j + h);
        auto lo = hn::Add(a, b), hi = hn::Sub(a, b);
        if (last) lo = hn::Mul(lo, hn::Set(d, scale)), hi = hn::Mul(hi, hn::Set(d, scale));
        hn::StoreU(lo, d, x + j);
        hn::StoreU(hi, d, x + j + h);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::format
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvpack::format {

HWY_EXPORT(WalshHadamard);

void walsh_hadamard(float* x, int n) {
  HWY_DYNAMIC_DISPATCH(WalshHadamard)(x, n);
}

}  // namespace kvpack::format
#endif  // HWY_ONCE
