// Dispatch of the integer kernels of quant/int_kernels-inl.h (per Highway target) and the
// activation buffers they read. matmul.cpp calls these for every quantized type except Q8_0/Q4_0
// on AVX-512 VNNI, which keep the 512-bit kernels of matmul-inl.h.
#include "model/simd_targets.h"  // first: selects the Highway targets

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/matmul_int.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "model/quant/act_quant-inl.h"
#include "model/quant/int_kernels-inl.h"

#if HWY_ONCE
#include <algorithm>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "model/matmul_int.h"

namespace kvpack::model {

HWY_EXPORT(HasIntKernels);
HWY_EXPORT(MatmulRowsInt);
HWY_EXPORT(IntBiasOffset);
HWY_EXPORT(IntDotName);
HWY_EXPORT(QuantizeInt);

const IntActivations& IntScratch::prepare(const float* x, int64_t n_tokens, int64_t cols,
                                          GgmlType type, ThreadPool& pool) {
  const WeightTypeTraits& tr = weight_traits(type);
  const int offset = HWY_DYNAMIC_DISPATCH(IntBiasOffset)(type);
  const size_t n = static_cast<size_t>(n_tokens * cols);
  // One buffer: qs, d32, sum16, bias4, xs4, each starting on a cache line.
  const size_t qs_bytes = round_up(n, kCacheLine);
  const size_t d_bytes = round_up(n / 32 * sizeof(float), kCacheLine);
  const size_t sum_bytes =
      tr.act == ActType::kQ8_K ? round_up(n / 16 * sizeof(int16_t), kCacheLine) : 0;
  const size_t bias_bytes = offset != 0 ? round_up(n / 4 * sizeof(int32_t), kCacheLine) : 0;
  const size_t xs_bytes =
      tr.has_min && tr.act == ActType::kQ8_0 ? round_up(n / 4 * sizeof(float), kCacheLine) : 0;
  const size_t need = qs_bytes + d_bytes + sum_bytes + bias_bytes + xs_bytes;
  if (need > capacity_) {
    bytes_ = make_aligned<uint8_t>(need);
    capacity_ = need;
  }
  uint8_t* p = bytes_.get();
  acts_ = IntActivations{};
  acts_.type = tr.act;
  acts_.cols = cols;
  acts_.qs = reinterpret_cast<int8_t*>(p);
  acts_.d32 = reinterpret_cast<float*>(p + qs_bytes);
  p += qs_bytes + d_bytes;
  acts_.sum16 = sum_bytes != 0 ? reinterpret_cast<int16_t*>(p) : nullptr;
  p += sum_bytes;
  acts_.offset = offset;
  acts_.bias4 = bias_bytes != 0 ? reinterpret_cast<int32_t*>(p) : nullptr;
  p += bias_bytes;
  acts_.xs4 = xs_bytes != 0 ? reinterpret_cast<float*>(p) : nullptr;
  // Tokens in parallel when there are many (prefill); a decode step quantizes inline.
  constexpr int64_t kTokensPerTask = 8;
  if (n_tokens <= kTokensPerTask) {
    HWY_DYNAMIC_DISPATCH(QuantizeInt)(x, 0, n_tokens, acts_);
  } else {
    pool.parallel_for((n_tokens + kTokensPerTask - 1) / kTokensPerTask, [&](int64_t task, int) {
      const int64_t t0 = task * kTokensPerTask;
      HWY_DYNAMIC_DISPATCH(QuantizeInt)(x, t0, std::min(n_tokens, t0 + kTokensPerTask), acts_);
    });
  }
  return acts_;
}

void matmul_rows_int(const MatmulJob& job, int64_t r0, int64_t r1) {
  HWY_DYNAMIC_DISPATCH(MatmulRowsInt)(job, r0, r1);
}

bool has_int_kernels() {
  return HWY_DYNAMIC_DISPATCH(HasIntKernels)();
}

const char* int_dot_name() {
  return HWY_DYNAMIC_DISPATCH(IntDotName)();
}

}  // namespace kvpack::model
#endif  // HWY_ONCE
