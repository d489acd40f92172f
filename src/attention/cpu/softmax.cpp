// The online-softmax step for one chunk of logits (kernels.h: softmax_step), per Highway target.
// Logits arrive in log2 units (the query carries log2(e)), so weights are 2^(x - m): a degree-5
// polynomial on the fraction and the integer part put into the exponent bits (relative error
// below kExp2RelError, measured 1.9e-7 over the reduced range), about a third of the work of a
// general exp. Columns outside a row's [lo, hi) become weight 0; rows that see the whole chunk,
// as every decode row does but the last, skip the masks.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

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
using VF = hn::Vec<DF>;

// 2^x for x <= 0; 0 below -126 (those weights are below 2^-126 of the row's largest).
HWY_INLINE VF Exp2(DF df, VF x) {
  const DI di;
  x = hn::Max(x, hn::Set(df, -127.0f));
  const VF n = hn::Round(x);
  const VF f = hn::Sub(x, n);  // [-0.5, 0.5], exact
  VF p = hn::Set(df, 1.325598359e-03f);
  p = hn::MulAdd(p, f, hn::Set(df, 9.675889807e-03f));
  p = hn::MulAdd(p, f, hn::Set(df, 5.550768308e-02f));
  p = hn::MulAdd(p, f, hn::Set(df, 2.402211330e-01f));
  p = hn::MulAdd(p, f, hn::Set(df, 6.931469384e-01f));
  p = hn::MulAdd(p, f, hn::Set(df, 1.000000073e+00f));
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // p 2^n in one instruction (VSCALEFPS) instead of building 2^n's exponent bits and
  // multiplying; below 2^-126 it keeps a subnormal where the bits give 0 (weights below 2^-126
  // of the row's largest either way).
  (void)di;
  return VF{_mm512_scalef_ps(p.raw, n.raw)};
#else
  // 2^n as exponent bits; n = -127 gives the bit pattern of 0.
  const auto bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(df, bits));
#endif
}

// Visible-column mask of the vector starting at column c.
HWY_INLINE auto Visible(DF df, DI di, int c, int lo, int hi) {
  const auto idx = hn::Add(hn::Iota(di, 0), hn::Set(di, c));
  const auto m = hn::And(hn::Gt(idx, hn::Set(di, lo - 1)), hn::Lt(idx, hn::Set(di, hi)));
  return hn::RebindMask(df, m);
}

// Soft-caps the visible columns in place (x = cap * tanh(x)) and returns their max (-inf when
// none).
HWY_INLINE float CapAndMax(DF df, DI di, float* x, int lo, int hi, float softcap, float cap) {
  const int N = static_cast<int>(hn::Lanes(df));
  const auto neg_inf = hn::Set(df, -std::numeric_limits<float>::infinity());
  auto mx = neg_inf;
  for (int c = lo / N * N; c < hi; c += N) {
    auto v = hn::LoadU(df, x + c);
    if (softcap > 0.0f) {
      v = hn::Mul(hn::Set(df, cap), hn::Tanh(df, v));
      hn::StoreU(v, df, x + c);
    }
    mx = hn::Max(mx, hn::IfThenElse(Visible(df, di, c, lo, hi), v, neg_inf));
  }
  return hn::GetLane(hn::MaxOfLanes(df, mx));
}

// x[c] = 2^(x[c] - m) on visible columns, 0 elsewhere in [0, n); returns the sum.
HWY_INLINE float ExpAndSum(DF df, DI di, float* x, int n, int lo, int hi, float m) {
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int c = 0; c < n; c += N) {
    const auto vis = Visible(df, di, c, lo, hi);
    const auto e = hn::IfThenElseZero(vis, Exp2(df, hn::Sub(hn::LoadU(df, x + c), vm)));
    hn::StoreU(e, df, x + c);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

// A row that sees all n columns, n a multiple of N, no cap: max, then 2^(x - m) and the sum.
HWY_INLINE float FullRow(DF df, float* x, int n, float m_old, float* m_new) {
  const int N = static_cast<int>(hn::Lanes(df));
  auto mx0 = hn::LoadU(df, x), mx1 = mx0;
  int c = N;
  for (; c + 2 * N <= n; c += 2 * N) {
    mx0 = hn::Max(mx0, hn::LoadU(df, x + c));
    mx1 = hn::Max(mx1, hn::LoadU(df, x + c + N));
  }
  if (c < n) mx0 = hn::Max(mx0, hn::LoadU(df, x + c));
  const float m = std::max(m_old, hn::GetLane(hn::MaxOfLanes(df, hn::Max(mx0, mx1))));
  *m_new = m;
  const auto vm = hn::Set(df, m);
  auto s0 = hn::Zero(df), s1 = hn::Zero(df);
  c = 0;
  for (; c + 2 * N <= n; c += 2 * N) {
    const auto e0 = Exp2(df, hn::Sub(hn::LoadU(df, x + c), vm));
    const auto e1 = Exp2(df, hn::Sub(hn::LoadU(df, x + c + N), vm));
    hn::StoreU(e0, df, x + c);
    hn::StoreU(e1, df, x + c + N);
    s0 = hn::Add(s0, e0);
    s1 = hn::Add(s1, e1);
  }
  if (c < n) {
    const auto e = Exp2(df, hn::Sub(hn::LoadU(df, x + c), vm));
    hn::StoreU(e, df, x + c);
    s0 = hn::Add(s0, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
}

void SoftmaxStep(float* logits, size_t stride, int rows, int n, const int* lo, const int* hi,
                 float softcap, float* m, float* l, float* alpha) {
  const DF df;
  const DI di;
  const int N = static_cast<int>(hn::Lanes(df));
  const float cap = softcap * static_cast<float>(1.4426950408889634);  // log2 units
  for (int r = 0; r < rows; ++r) {
    float* x = logits + r * stride;
    if (softcap == 0.0f && lo[r] <= 0 && hi[r] >= n && n % N == 0) {
      float m_new;
      const float sum = FullRow(df, x, n, m[r], &m_new);
      alpha[r] = m[r] == m_new ? 1.0f : std::exp2(m[r] - m_new);
      l[r] = l[r] * alpha[r] + sum;
      m[r] = m_new;
      continue;
    }
    const float mx = lo[r] < hi[r] ? CapAndMax(df, di, x, lo[r], hi[r], softcap, cap)
                                   : -std::numeric_limits<float>::infinity();
    if (mx == -std::numeric_limits<float>::infinity()) {
      ExpAndSum(df, di, x, n, 0, 0, 0.0f);  // zero weights: the V kernel adds nothing
      alpha[r] = 1.0f;
      continue;
    }
    const float m_new = std::max(m[r], mx);
    alpha[r] = m[r] == m_new ? 1.0f : std::exp2(m[r] - m_new);
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
