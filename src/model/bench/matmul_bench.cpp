// `kvpack bench matmul`: matrices per type, the timed matvec / matmul, and the peak probes (per
// Highway target: the dot policy of the integer kernels and the f32 kernels' FMA).
#include "model/simd_targets.h"  // first: selects the Highway targets

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/bench/matmul_bench.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "model/quant/int_dot-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {

// Independent accumulators: more than any instruction's latency times its issue rate.
constexpr int kChains = 12;

// Multiply-adds done by `iters` rounds of kChains integer dots (0 where no integer kernel).
int64_t IntDotLoop(int64_t iters) {
#if HWY_TARGET == HWY_SCALAR
  (void)iters;
  return 0;
#else
  return WithDot([&](auto dot) {
    using Dot = decltype(dot);
    VU8 u = hn::Set(DU8(), 3);
    const VI8 x = hn::Set(DI8(), 5);
    VI32 acc[kChains];
    for (auto& a : acc) a = hn::Zero(DI32());
    for (int64_t i = 0; i < iters; ++i) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128
      asm volatile("" : "+x"(u.raw));  // a fresh operand each round: nothing is hoisted
#endif
      for (auto& a : acc) a = Dot::Dot(a, u, x);
    }
    VI32 sum = acc[0];
    for (int c = 1; c < kChains; ++c) sum = hn::Add(sum, acc[c]);
    return hn::GetLane(sum) == 12345 ? int64_t{0} : iters * kChains * static_cast<int64_t>(kW);
  });
#endif
}

// Multiply-adds done by `iters` rounds of kChains f32 FMAs at the f32 kernels' width.
int64_t FmaLoop(int64_t iters) {
  const hn::CappedTag<float, 16> df;
  auto x = hn::Set(df, 1.0f);
  const auto y = hn::Set(df, 0.999f);
  hn::Vec<decltype(df)> acc[kChains];
  for (auto& a : acc) a = hn::Zero(df);
  for (int64_t i = 0; i < iters; ++i) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
    asm volatile("" : "+x"(x.raw));
#endif
    for (auto& a : acc) a = hn::MulAdd(x, y, a);
  }
  auto sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = hn::Add(sum, acc[c]);
  return hn::GetLane(sum) == 1234.5f ? 0 : iters * kChains * static_cast<int64_t>(hn::Lanes(df));
}

}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <cstring>

#include "base/aligned.h"
#include "base/read_bandwidth.h"
#include "base/rng.h"
#include "base/timer.h"
#include "model/bench/matmul_bench.h"
#include "model/matmul.h"
#include "model/quant_ref.h"

namespace kvpack::model::bench {

HWY_EXPORT(IntDotLoop);
HWY_EXPORT(FmaLoop);

namespace {

// Runs fn on every thread of the pool `reps` times; the best ops/s of fn's returned count.
template <typename Fn>
Rate peak_of(ThreadPool& pool, Fn&& fn) {
  constexpr int64_t kIters = 1 << 20;
  const int threads = pool.size();
  Rate best;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<int64_t> ops{0};
    const double t0 = now_seconds(), c0 = process_cpu_seconds();
    pool.parallel_for(threads, [&](int64_t, int) { ops += 2 * fn(kIters); });
    const double wall = now_seconds() - t0, cpu = (process_cpu_seconds() - c0) / threads;
    best.wall = std::max(best.wall, static_cast<double>(ops) / wall);
    best.cpu = std::max(best.cpu, static_cast<double>(ops) / cpu);
  }
  return best;
}

// A matrix of `rows` rows of `cols` random values quantized to t; the first 64 rows are drawn and
// quantized, the others copy them (speed does not depend on the values; quantizing a gigabyte
// would take minutes).
struct Matrix {
  AlignedArray<uint8_t> bytes;
  WeightMatrix w;
};

Matrix make_matrix(GgmlType t, int64_t rows, int64_t cols) {
  Matrix m;
  m.w.name = "bench";
  m.w.type = t;
  m.w.rows = rows;
  m.w.cols = cols;
  m.w.row_bytes = weight_row_bytes(t, cols);
  m.bytes = make_aligned<uint8_t>(m.w.bytes());
  Rng rng(42);
  std::vector<float> row(static_cast<size_t>(cols));
  constexpr int64_t kDistinct = 64;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = m.bytes.get() + r * m.w.row_bytes;
    if (r >= kDistinct) {
      std::memcpy(dst, m.bytes.get() + (r % kDistinct) * m.w.row_bytes, m.w.row_bytes);
      continue;
    }
    for (float& v : row) v = static_cast<float>(rng.normal() * 0.02);
    quantize_row_ref(t, row.data(), dst, cols);
  }
  m.w.data = m.bytes.get();
  return m;
}

std::vector<float> activations(int64_t n) {
  Rng rng(7);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = static_cast<float>(rng.normal());
  return x;
}

// Best wall and CPU-per-thread seconds of fn over `reps` runs after one warm-up.
template <typename Fn>
Rate best_seconds(int reps, int threads, Fn&& fn) {
  fn();
  Rate best{1e30, 1e30};
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_seconds(), c0 = process_cpu_seconds();
    fn();
    best.wall = std::min(best.wall, now_seconds() - t0);
    best.cpu = std::min(best.cpu, (process_cpu_seconds() - c0) / threads);
  }
  return best;
}

}  // namespace

Rate int_dot_peak(ThreadPool& pool) {
  return peak_of(pool, [](int64_t n) { return HWY_DYNAMIC_DISPATCH(IntDotLoop)(n); });
}

Rate fma_peak(ThreadPool& pool) {
  return peak_of(pool, [](int64_t n) { return HWY_DYNAMIC_DISPATCH(FmaLoop)(n); });
}

std::vector<MatmulBenchResult> bench_matmul(const MatmulBenchConfig& c, ThreadPool& pool) {
  const int threads = pool.size();
  const Rate int_peak = int_dot_peak(pool), f32_peak = fma_peak(pool);
  const ReadProbe probe(c.decode_bytes);
  const std::vector<float> x = activations(c.cols * c.prefill_tokens);
  std::vector<float> y(
      static_cast<size_t>(std::max<int64_t>(c.prefill_rows * c.prefill_tokens, 1)));
  std::vector<MatmulBenchResult> out;
  for (const GgmlType t : c.types) {
    MatmulBenchResult r;
    r.type = t;
    const bool quantized = weight_traits(t).act != ActType::kF32;
    r.peak = quantized ? int_peak : f32_peak;
    r.peak_kind = quantized ? "int8 dot" : "f32 fma";
    {
      const int64_t rows =
          std::max<int64_t>(1, static_cast<int64_t>(c.decode_bytes / weight_row_bytes(t, c.cols)));
      const Matrix m = make_matrix(t, rows, c.cols);
      std::vector<float> yd(static_cast<size_t>(rows));
      r.decode_rows = rows;
      r.decode_bytes = m.w.bytes();
      r.decode_seconds =
          best_seconds(c.repetitions, threads, [&] { matvec(m.w, x.data(), yd.data(), pool); });
      const ReadProbe::Rates bw = probe.measure_rates(pool);
      r.bandwidth = {bw.wall, bw.cpu};
    }
    const Matrix m = make_matrix(t, c.prefill_rows, c.cols);
    r.prefill_bytes = m.w.bytes();
    r.prefill_flops =
        2.0 * static_cast<double>(c.prefill_rows) * static_cast<double>(c.cols) * c.prefill_tokens;
    r.prefill_seconds = best_seconds(std::max(1, c.repetitions / 2), threads, [&] {
      matmul(m.w, x.data(), c.prefill_tokens, y.data(), pool);
    });
    out.push_back(r);
  }
  return out;
}

}  // namespace kvpack::model::bench
#endif  // HWY_ONCE
