// Per-target activation quantizers of the integer kernels: q8_0 and q8_K blocks exactly as
// quantize_row_q8_0_ref / quantize_row_q8_K_ref (tested byte for byte on every target), plus the
// sums the kernels read (IntActivations in matmul_kernels.h).
#if defined(KVPACK_MODEL_QUANT_ACT_QUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_QUANT_ACT_QUANT_INL_H_
#undef KVPACK_MODEL_QUANT_ACT_QUANT_INL_H_
#else
#define KVPACK_MODEL_QUANT_ACT_QUANT_INL_H_
#endif

#include <hwy/highway.h>

#include <cmath>
#include <cstring>

#include "base/half.h"
#include "model/matmul_kernels.h"
#include "model/quant/blocks.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors: matmul.cpp's generic path instead

// At most 16 f32 lanes, so 32 values are a whole number of vectors.
using DFq = hn::CappedTag<float, 16>;
using VFq = hn::Vec<DFq>;
using DIq = hn::RebindToSigned<DFq>;

// roundf: nearest, ties away from zero (v - trunc(v) is exact).
HWY_INLINE VFq RoundHalfAway(DFq df, VFq v) {
  const VFq t = hn::Trunc(v);
  const auto up = hn::Ge(hn::Abs(hn::Sub(v, t)), hn::Set(df, 0.5f));
  return hn::Add(t, hn::IfThenElseZero(up, hn::CopySignToAbs(hn::Set(df, 1.0f), v)));
}

// Largest |x| over n values and whether all are finite.
HWY_INLINE float AbsMax(const float* x, int n, bool* finite) {
  const DFq df;
  VFq amax = hn::Zero(df);
  bool ok = true;
  for (int k = 0; k < n; k += static_cast<int>(hn::Lanes(df))) {
    const VFq v = hn::LoadU(df, x + k);
    ok = ok && hn::AllTrue(df, hn::IsFinite(v));
    amax = hn::Max(amax, hn::Abs(v));
  }
  *finite = ok;
  return hn::GetLane(hn::MaxOfLanes(df, amax));
}

// n values rounded by `round` after scaling by s, clamped to at most 127, as int8.
template <class Round>
HWY_INLINE void ScaleToInt8(const float* x, int n, float s, int8_t* q, Round&& round) {
  const DFq df;
  const DIq di;
  const hn::Rebind<int8_t, DFq> d8;
  for (int k = 0; k < n; k += static_cast<int>(hn::Lanes(df))) {
    const auto i = hn::Min(hn::ConvertTo(di, round(hn::Mul(hn::LoadU(df, x + k), hn::Set(df, s)))),
                           hn::Set(di, 127));
    hn::StoreU(hn::DemoteTo(d8, i), d8, q + k);
  }
}

// One q8_0 block; returns its scale (the f16 widened; NaN for a block ggml leaves undefined).
HWY_INLINE float QuantizeQ8_0(const float* x, int8_t* q) {
  const DFq df;
  bool finite;
  const float d = AbsMax(x, kQBlock, &finite) / 127.0f;
  const uint16_t dh = f32_to_f16(d);
  if (!finite || (dh & 0x7c00u) == 0x7c00u) {
    std::memset(q, 0, kQBlock);
    return NAN;
  }
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  ScaleToInt8(x, kQBlock, id, q, [&](VFq v) { return RoundHalfAway(df, v); });
  return f16_to_f32(dh);
}

// One q8_K block, with its sums of 16; returns its scale.
HWY_INLINE float QuantizeQ8_K(const float* x, int8_t* q, int16_t* sum16) {
  const DFq df;
  const int n = static_cast<int>(hn::Lanes(df));
  bool finite;
  const float amax = AbsMax(x, kQK, &finite);
  std::memset(sum16, 0, 16 * sizeof(int16_t));
  // The first value of largest magnitude, whose sign makes the scale's.
  float max = 0.0f;
  for (int k = 0; finite && amax != 0.0f && k < kQK; k += n) {
    const intptr_t at =
        hn::FindFirstTrue(df, hn::Eq(hn::Abs(hn::LoadU(df, x + k)), hn::Set(df, amax)));
    if (at >= 0) {
      max = x[k + at];
      break;
    }
  }
  const float iscale = -127.0f / max;
  if (!finite || amax == 0.0f || !std::isfinite(iscale)) {
    std::memset(q, 0, kQK);
    return finite ? 0.0f : NAN;
  }
  // hn::Round: nearest, ties to even, as ggml's nearest_int.
  ScaleToInt8(x, kQK, iscale, q, [](VFq v) { return hn::Round(v); });
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += q[16 * g + j];
    sum16[g] = static_cast<int16_t>(sum);
  }
  return 1.0f / iscale;
}

// Tokens [t0, t1) of x[n_tokens][a.cols] into a's arrays.
void QuantizeInt(const float* x, int64_t t0, int64_t t1, const IntActivations& a) {
  const int64_t n32 = a.cols / kQBlock;
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * a.cols;
    int8_t* q = a.qs + t * a.cols;
    float* d = a.d32 + t * n32;
    if (a.type == ActType::kQ8_0) {
      for (int64_t b = 0; b < n32; ++b) d[b] = QuantizeQ8_0(xt + b * kQBlock, q + b * kQBlock);
    } else {
      for (int64_t sb = 0; sb < a.cols / kQK; ++sb) {
        const float dk =
            QuantizeQ8_K(xt + sb * kQK, q + sb * kQK, a.sum16 + t * (a.cols / 16) + sb * 16);
        for (int b = 0; b < 8; ++b) d[sb * 8 + b] = dk;
      }
    }
    // Sums of each 4 quants: the offset's correction and the min part.
    const int64_t n4 = a.cols / 4;
    for (int64_t j = 0; (a.bias4 != nullptr || a.xs4 != nullptr) && j < n4; ++j) {
      const int s = q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3];
      if (a.bias4 != nullptr) a.bias4[t * n4 + j] = -a.offset * s;
      if (a.xs4 != nullptr) a.xs4[t * n4 + j] = d[j / 8] * static_cast<float>(s);
    }
  }
}

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
