// Kernels for the unencoded f32 tail (token-major rows), per Highway target. The tail holds at
// most a page plus any high-precision window, so these favour simplicity: any dim, the last
// partial vector done in scalar code.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/tail_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "attention/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

void ScoreTail(const float* k, size_t row_stride, int n, int dim, const float* q, int rows,
               float* logits, size_t stride) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const int full = dim / N * N;
  for (int r = 0; r < rows; ++r) {
    const float* qr = q + r * dim;
    for (int t = 0; t < n; ++t) {
      const float* kt = k + t * row_stride;
      auto acc = hn::Zero(df);
      for (int j = 0; j < full; j += N) {
        acc = hn::MulAdd(hn::LoadU(df, qr + j), hn::LoadU(df, kt + j), acc);
      }
      float dot = hn::GetLane(hn::SumOfLanes(df, acc));
      for (int j = full; j < dim; ++j) dot += qr[j] * kt[j];
      logits[r * stride + t] = dot;
    }
  }
}

void AccumulateTail(const float* v, size_t row_stride, int n, int dim, const float* w,
                    size_t w_stride, int rows, float* acc) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const int full = dim / N * N;
  for (int r = 0; r < rows; ++r) {
    float* ar = acc + r * dim;
    for (int t = 0; t < n; ++t) {
      const float wt = w[r * w_stride + t];
      const float* vt = v + t * row_stride;
      const auto wv = hn::Set(df, wt);
      for (int j = 0; j < full; j += N) {
        hn::StoreU(hn::MulAdd(wv, hn::LoadU(df, vt + j), hn::LoadU(df, ar + j)), df, ar + j);
      }
      for (int j = full; j < dim; ++j) ar[j] += wt * vt[j];
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvpack::attention::detail {

HWY_EXPORT(ScoreTail);
HWY_EXPORT(AccumulateTail);

void score_tail(const float* k, size_t row_stride, int n, int dim, const float* q, int rows,
                float* logits, size_t stride) {
  HWY_DYNAMIC_DISPATCH(ScoreTail)(k, row_stride, n, dim, q, rows, logits, stride);
}

void accumulate_tail(const float* v, size_t row_stride, int n, int dim, const float* w,
                     size_t w_stride, int rows, float* acc) {
  HWY_DYNAMIC_DISPATCH(AccumulateTail)(v, row_stride, n, dim, w, w_stride, rows, acc);
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
