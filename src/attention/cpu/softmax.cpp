// The online-softmax step for one chunk of logits (kernels.h: softmax_step), per Highway target.
// Columns outside a row's [lo, hi) become weight 0; the max, exp and sum use only visible ones.
#define HWY_WANT_AVX3_DL 1
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/softmax.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// After highway.h, per target:
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <limits>

#include "attention/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;

// Visible-column mask of the vector starting at column c.
HWY_INLINE auto Visible(DF df, DI di, int c, int lo, int hi) {
  const auto idx = hn::Add(hn::Iota(di, 0), hn::Set(di, c));
  const auto m = hn::And(hn::Gt(idx, hn::Set(di, lo - 1)), hn::Lt(idx, hn::Set(di, hi)));
  return hn::RebindMask(df, m);
}

// Soft-caps the visible columns in place and returns their max (-inf when none).
HWY_INLINE float CapAndMax(DF df, DI di, float* x, int lo, int hi, float softcap) {
  const int N = static_cast<int>(hn::Lanes(df));
  const auto neg_inf = hn::Set(df, -std::numeric_limits<float>::infinity());
  const auto cap = hn::Set(df, softcap);
  auto mx = neg_inf;
  for (int c = lo / N * N; c < hi; c += N) {
    auto v = hn::LoadU(df, x + c);
    if (softcap > 0.0f) {
      v = hn::Mul(cap, hn::Tanh(df, v));
      hn::StoreU(v, df, x + c);
    }
    mx = hn::Max(mx, hn::IfThenElse(Visible(df, di, c, lo, hi), v, neg_inf));
  }
  return hn::GetLane(hn::MaxOfLanes(df, mx));
}

// x[c] = exp(x[c] - m) on visible columns, 0 elsewhere in [0, n); returns the sum.
HWY_INLINE float ExpAndSum(DF df, DI di, float* x, int n, int lo, int hi, float m) {
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int c = 0; c < n; c += N) {
    const auto vis = Visible(df, di, c, lo, hi);
    const auto e = hn::IfThenElseZero(vis, hn::Exp(df, hn::Sub(hn::LoadU(df, x + c), vm)));
    hn::StoreU(e, df, x + c);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

void SoftmaxStep(float* logits, size_t stride, int rows, int n, const int* lo, const int* hi,
                 float softcap, float* m, float* l, float* alpha) {
  const DF df;
  const DI di;
  for (int r = 0; r < rows; ++r) {
    float* x = logits + r * stride;
    const float mx = lo[r] < hi[r] ? CapAndMax(df, di, x, lo[r], hi[r], softcap)
                                   : -std::numeric_limits<float>::infinity();
    if (mx == -std::numeric_limits<float>::infinity()) {
      ExpAndSum(df, di, x, n, 0, 0, 0.0f);  // zero weights: the V kernel adds nothing
      alpha[r] = 1.0f;
      continue;
    }
    const float m_new = std::max(m[r], mx);
    alpha[r] = m[r] == m_new ? 1.0f : std::exp(m[r] - m_new);
    l[r] = l[r] * alpha[r] + ExpAndSum(df, di, x, n, lo[r], hi[r], m_new);
    m[r] = m_new;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvpack::attention::detail {

HWY_EXPORT(SoftmaxStep);

void softmax_step(float* logits, size_t stride, int rows, int n, const int* lo, const int* hi,
                  float softcap, float* m, float* l, float* alpha) {
  HWY_DYNAMIC_DISPATCH(SoftmaxStep)(logits, stride, rows, n, lo, hi, softcap, m, l, alpha);
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
