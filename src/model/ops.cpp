// SIMD kernels (per Highway target) and scalar references for ops.h.
#include "model/simd_targets.h"  // first: selects the Highway targets

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/ops.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// After highway.h (per-target header):
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstdint>
#include <limits>

// GELU's tanh approximation: gelu(x) = 0.5 x (1 + tanh(c (x + a x^3))), c = sqrt(2 / pi).
#ifndef KVPACK_GELU_CONSTANTS
#define KVPACK_GELU_CONSTANTS
constexpr float kGeluA = 0.044715f;
constexpr float kGeluTwoC = 1.5957691216057308f;  // 2 sqrt(2 / pi)
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

float SumOfSquares(const float* x, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const VF v0 = hn::LoadU(df, x + i), v1 = hn::LoadU(df, x + i + N);
    const VF v2 = hn::LoadU(df, x + i + 2 * N), v3 = hn::LoadU(df, x + i + 3 * N);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
    a2 = hn::MulAdd(v2, v2, a2);
    a3 = hn::MulAdd(v3, v3, a3);
  }
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(df, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

// y = x * scale (* weight).
void ScaleRow(const float* x, const float* weight, float scale, int64_t n, float* y) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF vs = hn::Set(df, scale);
  int64_t i = 0;
  if (weight != nullptr) {
    for (; i + N <= n; i += N) {
      hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, x + i), vs), hn::LoadU(df, weight + i)), df, y + i);
    }
    for (; i < n; ++i) y[i] = x[i] * scale * weight[i];
  } else {
    for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), vs), df, y + i);
    for (; i < n; ++i) y[i] = x[i] * scale;
  }
}

// x / (1 + exp(-x)); exp's argument is capped at 100 (e^100 overflows f32 to inf, giving -0 for
// very negative x, as the reference) because Highway's Exp is only valid up to 104.
HWY_INLINE VF Silu(DF df, VF x) {
  const VF e = hn::Exp(df, hn::Min(hn::Neg(x), hn::Set(df, 100.0f)));
  return hn::Div(x, hn::Add(hn::Set(df, 1.0f), e));
}

// GELU, tanh approximation: 0.5 x (1 + tanh(t / 2)) = x / (1 + exp(-t)) with
// t = 2 sqrt(2/pi) (x + 0.044715 x^3): the sigmoid form keeps its relative error small where
// 1 + tanh would cancel (x < 0).
HWY_INLINE VF GeluTanh(DF df, VF x) {
  const VF x3 = hn::Mul(hn::Mul(x, x), x);
  const VF t = hn::Mul(hn::Set(df, kGeluTwoC), hn::MulAdd(hn::Set(df, kGeluA), x3, x));
  const VF e = hn::Exp(df, hn::Min(hn::Neg(t), hn::Set(df, 100.0f)));
  return hn::Div(x, hn::Add(hn::Set(df, 1.0f), e));
}

// y = act(gate) * up (up may be null: y = act(gate)).
template <VF (*Act)(DF, VF)>
void GatedRow(const float* gate, const float* up, int64_t n, float* y) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    VF s = Act(df, hn::LoadU(df, gate + i));
    if (up != nullptr) s = hn::Mul(s, hn::LoadU(df, up + i));
    hn::StoreU(s, df, y + i);
  }
  if (i < n) {  // one padded vector for the tail
    HWY_ALIGN float g[hn::MaxLanes(df)] = {};
    HWY_ALIGN float u[hn::MaxLanes(df)] = {};
    const int64_t m = n - i;
    for (int64_t j = 0; j < m; ++j) {
      g[j] = gate[i + j];
      u[j] = up != nullptr ? up[i + j] : 1.0f;
    }
    hn::Store(hn::Mul(Act(df, hn::Load(df, g)), hn::Load(df, u)), df, g);
    for (int64_t j = 0; j < m; ++j) y[i + j] = g[j];
  }
}

void SwigluRow(const float* gate, const float* up, int64_t n, float* y) {
  GatedRow<Silu>(gate, up, n, y);
}

void GegluRow(const float* gate, const float* up, int64_t n, float* y) {
  GatedRow<GeluTanh>(gate, up, n, y);
}

void SoftmaxRow(float* x, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  float max = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {  // scalar: also catches NaN, which SIMD max may drop
    nan = nan || std::isnan(x[i]);
    max = x[i] > max ? x[i] : max;
  }
  if (nan || std::isinf(max)) {  // +inf or all -inf
    for (int64_t i = 0; i < n; ++i) x[i] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  // exp(x - max) with x - max in [-inf, 0]; Highway's Exp gives 0 below -104.
  const VF vmax = hn::Set(df, max);
  VF acc = hn::Zero(df);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmax));
    hn::StoreU(e, df, x + i);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, acc));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  ScaleRow(x, nullptr, 1.0f / sum, n, x);
}

}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <numbers>
#include <vector>

#include "base/error.h"
#include "model/ops.h"
#include "model/quant_ref.h"

namespace kvpack::model {

HWY_EXPORT(SumOfSquares);
HWY_EXPORT(ScaleRow);
HWY_EXPORT(SwigluRow);
HWY_EXPORT(GegluRow);
HWY_EXPORT(SoftmaxRow);

void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  const float mean = HWY_DYNAMIC_DISPATCH(SumOfSquares)(x, n) / static_cast<float>(n);
  HWY_DYNAMIC_DISPATCH(ScaleRow)(x, weight, 1.0f / std::sqrt(mean + eps), n, y);
}

void rms_norm_ref(const float* x, const float* weight, float eps, int64_t n, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);  // ggml: 1.0f/sqrtf(mean + eps)
  for (int64_t i = 0; i < n; ++i)
    y[i] = weight != nullptr ? x[i] * scale * weight[i] : x[i] * scale;
}

void silu(const float* x, int64_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(SwigluRow)(x, nullptr, n, y);
}

void silu_ref(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>(x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))));
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(SwigluRow)(gate, up, n, y);
}

void swiglu_ref(const float* gate, const float* up, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    y[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void geglu(const float* gate, const float* up, int64_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(GegluRow)(gate, up, n, y);
}

void geglu_ref(const float* gate, const float* up, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = gate[i];
    const double t = 2.0 * std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x);
    y[i] = static_cast<float>(x / (1.0 + std::exp(-t)) * up[i]);
  }
}

void softmax(float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SoftmaxRow)(x, n);
}

void softmax_ref(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    nan = nan || std::isnan(x[i]);
    max = x[i] > max ? x[i] : max;
  }
  if (nan || std::isinf(max)) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  std::vector<double> e(n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += e[i] = std::exp(static_cast<double>(x[i]) - max);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void get_rows(const WeightMatrix& w, const int32_t* ids, int64_t n_ids, float* out) {
  for (int64_t i = 0; i < n_ids; ++i) {
    if (ids[i] < 0 || ids[i] >= w.rows) {
      fail("token id {} is out of range for '{}' ({} rows)", ids[i], w.name, w.rows);
    }
    dequantize_row_ref(w.type, w.row(ids[i]), out + i * w.cols, w.cols);
  }
}

}  // namespace kvpack::model
#endif  // HWY_ONCE
