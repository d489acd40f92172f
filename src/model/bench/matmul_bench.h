// Benchmark support for `kvpack bench matmul`: per weight type, the decode matvec over a matrix
// larger than the caches against the read bandwidth measured beside it, and the prefill matmul
// against the peak of the kernel's instruction (integer dot or f32 FMA) measured in the same run.
// Every figure has a wall-clock and a CPU-time version (CPU seconds / threads: the rate on an
// idle machine, for shared ones).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/thread_pool.h"
#include "model/ggml_type.h"

namespace kvpack::model::bench {

struct MatmulBenchConfig {
  std::vector<GgmlType> types;
  size_t decode_bytes = size_t{1} << 30;  // weight bytes of each decode matrix (beyond the caches)
  int64_t cols = 4096;                    // input dim of every matrix (a multiple of 256)
  int64_t prefill_rows = 4096;
  int prefill_tokens = 512;
  int repetitions = 5;
};

// Rates as wall-clock and CPU-time figures (CPU: per thread of the pool).
struct Rate {
  double wall = 0;
  double cpu = 0;
};

struct MatmulBenchResult {
  GgmlType type = GgmlType::F32;
  int64_t decode_rows = 0;
  uint64_t decode_bytes = 0;  // the decode matrix
  Rate decode_seconds;        // best matvec
  Rate bandwidth;             // bytes/s of the read probe, measured right after
  uint64_t prefill_bytes = 0;
  double prefill_flops = 0;  // 2 * rows * cols * tokens
  Rate prefill_seconds;      // best matmul
  Rate peak;                 // ops/s of the kernel's instruction on this target and pool
  const char* peak_kind = "";
};

// The peak op rates of the current SIMD target with every thread of the pool: integer dot
// products (2 ops per multiply-add, the instruction the integer kernels use: VPDPBUSD,
// PMADDUBSW+PMADDWD, ...) and f32 FMA at the f32 kernels' vector width. Zero on the scalar
// target's integer path.
Rate int_dot_peak(ThreadPool& pool);
Rate fma_peak(ThreadPool& pool);

std::vector<MatmulBenchResult> bench_matmul(const MatmulBenchConfig& config, ThreadPool& pool);

}  // namespace kvpack::model::bench
