// `kvpack bench cache`, shared by the simulator (bench_cache.cpp) and its report
// (bench_cache_report.cpp): the options, what the run measured, and the report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv_flags.h"
#include "kvpack/cache.h"

namespace kvpack::cli::cache_bench {

struct Options {
  int sessions = 16;
  int prefix = 2048;
  std::string budget = "1GiB";
  int layers = 32, kv_heads = 8, head_dim = 128;  // Llama-3.1-8B's KV shape
  std::string model;                              // a preset's KV shape and windows instead
  int swa_window = 0, swa_period = 0;             // sliding layers: window, pattern period
  std::vector<int> layer_window;                  // resolved per layer (0: full attention)
  int page_tokens = 32;
  int window = 0;
  int turns = 4;
  int user_tokens = 64, gen_tokens = 128;
  double fork_rate = 0.1, end_rate = 0.1;
  uint64_t seed = 1;
  bool json = false;
  KvFlags kv;
};

// The workload as serve::Scheduler ran it: turns done, replies regenerated (forks), sessions
// ended, preemptions and the tokens recomputed after them.
struct Stats {
  uint64_t turns = 0, forks = 0, ended = 0, preempted = 0, recomputed_tokens = 0;
  double seconds = 0;
};

// Operation costs measured beside the run: page encoding with the run's codecs and with f16,
// and the machine's copy bandwidth, so the append rate can be read against both.
struct Costs {
  double encode_us = 0, encode_f16_us = 0;  // one page, all layers, K and V
  double decode_us = 0, decode_f16_us = 0;  // append of one decoded token, all layers
  double copy_gbs = 0;
};

// Pages the sliding groups' live sequences hold, and those they released behind the window.
struct SlidingUse {
  uint64_t held = 0, released = 0;
  bool any = false;
};

// Sums the sliding groups of a residency report.
SlidingUse sliding_use(const cache::Residency& r);

// What compact() and shrink() did once half of the live sessions had ended.
struct AfterRun {
  int live = 0, ended = 0;
  uint64_t moved = 0, released = 0;
};

struct Report {
  const Options& o;
  const format::KVPolicy& policy;
  uint64_t prompt_tokens;  // the shared system prompt
  const Stats& st;
  const cache::Residency& r;
  int copies;
  AfterRun after;
  Costs costs;

  double append_s() const { return r.counters.append_ns * 1e-9; }
  double rows_per_s() const { return append_s() > 0 ? r.counters.appended_tokens / append_s() : 0; }
  double token_append_us() const {
    const double tokens = static_cast<double>(r.counters.appended_tokens) / o.layers;
    return tokens > 0 ? append_s() * 1e6 / tokens : 0;
  }
  double input_gbs() const {  // f32 K and V rows handed to append
    const double row = 2.0 * o.kv_heads * o.head_dim * sizeof(float);
    return rows_per_s() * row / 1e9;
  }
  double decode_input_gbs() const {  // f32 K and V rows of one token, all layers, per second
    return 2.0 * o.layers * o.kv_heads * o.head_dim * sizeof(float) / costs.decode_us / 1e3;
  }
  double run_encode_us() const {  // one page, all layers
    const double pages = static_cast<double>(r.counters.encoded_pages) / o.layers;
    return pages > 0 ? r.counters.encode_ns * 1e-3 / pages : 0;
  }
  uint64_t prompt_pages() const { return prompt_tokens / o.page_tokens; }
};

// The tables, or one JSON object with --json.
void print_report(const Report& x);

}  // namespace kvpack::cli::cache_bench
