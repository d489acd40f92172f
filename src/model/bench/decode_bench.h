// Benchmark support for `kvpack bench decode` (llama-bench's -d/-n): fill a sequence's cache to
// a depth, then time single-token decode steps of the whole model, beside the read bandwidth
// measured in the same process.
#pragma once

#include <cstdint>
#include <vector>

#include "base/read_bandwidth.h"
#include "kvpack/model.h"

namespace kvpack::model::bench {

// How the cache reaches the depth before timing.
enum class Fill {
  // Append K/V rows straight into the cache (random values of unit scale, ids arbitrary): the
  // pages hold exactly what a prefill would leave, in a fraction of the time a quadratic
  // prefill to 16k takes. Decode speed does not depend on the values.
  kv,
  // Run the model's own chunked prefill over arbitrary ids (slow at large depths).
  prefill,
};

struct DecodeBenchConfig {
  std::vector<int64_t> depths = {0};
  int n_decode = 32;  // timed decode steps per repetition
  int repetitions = 3;
  int page_tokens = 32;
  Fill fill = Fill::kv;
  uint64_t seed = 1;
};

struct DecodeResult {
  format::KVPolicy policy;
  int64_t depth = 0;
  std::vector<double> tokens_per_s;  // one per repetition
  double mean_tokens_per_s = 0;
  double stddev_tokens_per_s = 0;
  // Steps per (process CPU second / threads), mean over the repetitions: what an idle machine
  // would show when other work shares the cores (the thread pool's idle spin included).
  double cpu_tokens_per_s = 0;
  attention::KernelReport kernels;  // which kernels read each layer (SIMD target in force)
  uint64_t kv_bytes = 0;            // the sequence's pages at depth + n/2 (all layers, K and V)
  uint64_t weight_bytes = 0;        // matrices one decode step reads
  uint64_t bytes_per_step = 0;      // weights + KV read by one step at the mean depth of the run
  double bandwidth = 0;             // bytes/s of the read probe beside this result
  double fill_seconds = 0;
};

// Fills a cache to each depth and times n_decode steps, `repetitions` times (the steps are
// truncated away between repetitions). One cache per policy, sized for the deepest run.
std::vector<DecodeResult> bench_decode(const Model& model, const format::KVPolicy& policy,
                                       const DecodeBenchConfig& config, ThreadPool& pool,
                                       const ReadProbe& probe);

}  // namespace kvpack::model::bench
