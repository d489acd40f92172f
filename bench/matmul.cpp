// Matrix-vector (decode) and matrix-matrix (prefill) speed per weight type.
//
//   bench_matmul [--benchmark_filter=Matvec] [--benchmark_format=json]
//
// Matvec reports GB/s of weight bytes read, beside its ratio to a streaming read of a buffer of
// the same size with the same threads (x_stream: 1.0 means the kernel runs at the read bandwidth
// of wherever that many bytes live: L3 for the small shapes here, DRAM beyond ~32 MB) and its
// speed relative to F16 (x_f16). Matmul reports GFLOP/s over a batch of tokens. Every type of
// the weight-type table; the quantized ones run both dot paths (integer, and f32 dequantized on
// the fly). `kvpack bench matmul` is the per-type report against DRAM bandwidth and peaks.
#include "model/simd_targets.h"  // first: selects the Highway targets

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "../bench/matmul.cpp"  // relative to src/, an include dir
#include <hwy/foreach_target.h>                   // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace kvpack::bench::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums n floats (n a multiple of 4 vectors) with full-width loads: the streaming-read baseline.
float StreamSum(const float* p, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, hn::Load(d, p + i));
    a1 = hn::Add(a1, hn::Load(d, p + i + N));
    a2 = hn::Add(a2, hn::Load(d, p + i + 2 * N));
    a3 = hn::Add(a3, hn::Load(d, p + i + 3 * N));
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

}  // namespace kvpack::bench::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "base/aligned.h"
#include "base/rng.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/quant_ref.h"

namespace kvpack::bench {
HWY_EXPORT(StreamSum);
}  // namespace kvpack::bench

namespace kvpack::model {
namespace {

struct Shape {
  int64_t rows, cols;
};
// A 2048-wide model's attention projection and FFN down projection (8192 inputs).
constexpr Shape kShapes[] = {{2048, 2048}, {2048, 8192}};

struct Weights {
  AlignedArray<uint8_t> bytes;
  WeightMatrix w;
};

const WeightMatrix& weights(GgmlType t, Shape s) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::unique_ptr<Weights>> cache;
  auto& slot = cache[{static_cast<int>(t), s.rows, s.cols}];
  if (!slot) {
    slot = std::make_unique<Weights>();
    WeightMatrix& w = slot->w;
    w.name = "bench";
    w.type = t;
    w.rows = s.rows;
    w.cols = s.cols;
    w.row_bytes = weight_row_bytes(t, s.cols);
    slot->bytes = make_aligned<uint8_t>(w.bytes());
    Rng rng(42);
    std::vector<float> row(s.cols);
    for (int64_t r = 0; r < s.rows; ++r) {
      for (auto& v : row) v = static_cast<float>(rng.normal() * 0.02);
      quantize_row_ref(t, row.data(), slot->bytes.get() + r * w.row_bytes, s.cols);
    }
    w.data = slot->bytes.get();
  }
  return slot->w;
}

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

std::vector<float> activations(int64_t n) {
  Rng rng(7);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

template <class Fn>
double best_seconds(Fn&& fn, int reps) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Streaming read of `bytes` bytes split over the pool's threads, the best of several passes:
// the bandwidth limit for a kernel reading that many bytes once per call.
double stream_gbps(size_t bytes, int threads) {
  static std::map<std::pair<size_t, int>, double> memo;
  auto it = memo.find({bytes, threads});
  if (it != memo.end()) return it->second;
  const size_t n = round_up(bytes / 4, 256);
  AlignedArray<float> buf = make_aligned<float>(n);
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 255);
  ThreadPool& p = pool(threads);
  const int64_t tasks = 64;  // chunks of n / 64 floats: multiples of 4 vectors
  std::vector<float> sums(tasks);
  auto pass = [&] {
    p.parallel_for(tasks, [&](int64_t task, int) {
      const size_t chunk = n / tasks;
      sums[task] = HWY_DYNAMIC_DISPATCH(kvpack::bench::StreamSum)(buf.get() + task * chunk, chunk);
    });
    benchmark::DoNotOptimize(sums.data());
  };
  const double gbps = static_cast<double>(bytes) / best_seconds(pass, 30) * 1e-9;
  memo[{bytes, threads}] = gbps;
  return gbps;
}

double f16_seconds(Shape s, int threads) {
  static std::map<std::tuple<int64_t, int64_t, int>, double> memo;
  auto key = std::make_tuple(s.rows, s.cols, threads);
  if (auto it = memo.find(key); it != memo.end()) return it->second;
  const WeightMatrix& w = weights(GgmlType::F16, s);
  const auto x = activations(s.cols);
  std::vector<float> y(s.rows);
  const double sec = best_seconds([&] { matvec(w, x.data(), y.data(), pool(threads)); }, 30);
  memo[key] = sec;
  return sec;
}

void BM_Matvec(benchmark::State& state, GgmlType t, Shape s, QuantDot dot) {
  const int threads = static_cast<int>(state.range(0));
  const WeightMatrix& w = weights(t, s);
  const auto x = activations(s.cols);
  std::vector<float> y(s.rows);
  ThreadPool& p = pool(threads);
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    matvec(w, x.data(), y.data(), p, dot);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(y.data());
  }
  // Rates from the best iteration: the machine is shared, so the mean measures the neighbours.
  const double gbps = static_cast<double>(w.bytes()) / best * 1e-9;
  state.counters["GB/s"] = gbps;
  state.counters["x_stream"] = gbps / stream_gbps(w.bytes(), threads);
  state.counters["x_f16"] = f16_seconds(s, threads) / best;
  state.counters["us_best"] = best * 1e6;
  state.SetLabel(matmul_target());
}

void BM_Matmul(benchmark::State& state, GgmlType t, Shape s, QuantDot dot) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n_tokens = state.range(1);
  const WeightMatrix& w = weights(t, s);
  const auto x = activations(s.cols * n_tokens);
  std::vector<float> y(s.rows * n_tokens);
  ThreadPool& p = pool(threads);
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(w, x.data(), n_tokens, y.data(), p, dot);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = 2.0 * s.rows * s.cols * n_tokens / best * 1e-9;
  state.counters["tok/s"] = n_tokens / best;
  state.SetLabel(matmul_target());
}

std::string type_name(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}

int register_all() {
  for (Shape s : kShapes) {
    for (const WeightTypeTraits& tr : weight_types()) {
      const GgmlType t = tr.type;
      const bool q = tr.act != ActType::kF32;
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        if (!q && dot == QuantDot::kF32) continue;  // float types have one path
        const std::string path = !q ? "" : dot == QuantDot::kInt8 ? "/int8" : "/f32";
        const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
        benchmark::RegisterBenchmark(("Matvec/" + type_name(t) + path + "/" + shape).c_str(),
                                     BM_Matvec, t, s, dot)
            ->Arg(1)
            ->Arg(2)
            ->ArgName("threads")
            ->UseRealTime()
            ->MinTime(0.3);
        if (s.cols == 2048) {
          benchmark::RegisterBenchmark(("Matmul/" + type_name(t) + path + "/" + shape).c_str(),
                                       BM_Matmul, t, s, dot)
              ->Args({1, 64})
              ->Args({2, 64})
              ->ArgNames({"threads", "tokens"})
              ->UseRealTime()
              ->MinTime(0.3);
        }
      }
    }
  }
  return 0;
}
const int registered = register_all();

}  // namespace
}  // namespace kvpack::model

BENCHMARK_MAIN();
#endif  // HWY_ONCE
