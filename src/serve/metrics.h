// The server's counters and latency histograms, and their Prometheus text (src/serve). Names
// follow vLLM's where it has one, under the `kvpack:` prefix (docs/cli.md lists them). The
// engine thread records; /metrics renders a snapshot. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "kvpack/cache.h"

namespace kvpack::serve {

// A cumulative histogram with fixed upper bounds (seconds), Prometheus style.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double x);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, not cumulative
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // [bounds.size() + 1]: the last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// What the scheduler counts (monotonic) and sees now (gauges).
struct ServeCounters {
  uint64_t requests_running = 0;
  uint64_t requests_waiting = 0;
  uint64_t preemptions = 0;
  uint64_t prompt_tokens = 0;      // prompt tokens of admitted requests (cached ones included)
  uint64_t generation_tokens = 0;  // sampled tokens
  uint64_t prefix_queries = 0;     // prompt tokens looked up in the prefix index
  uint64_t prefix_hits = 0;        // of those, tokens found cached
  uint64_t finished_stop = 0, finished_length = 0, finished_aborted = 0, finished_error = 0;
  uint64_t rejected = 0;         // refused at submit (queue full, draining)
  uint64_t steps = 0;            // engine steps that ran the model
  uint64_t step_rows = 0;        // token rows those steps computed
  uint64_t forward_batches = 0;  // Forward::eval_batch calls (one per pool with rows per step)
  // K/V page bytes the decode rows read: per sequence (today's attention) and distinct pages
  // only (the floor for attention that reads a shared page once for all its holders).
  uint64_t decode_page_bytes = 0;
  uint64_t decode_unique_page_bytes = 0;
  // What decode attention did read from encoded pages (attention::DecodeStats): each shared
  // prefix page once per step, not the filling tail pages (those are read as f32 rows).
  uint64_t decode_read_bytes = 0;
};

// One pool's residency for the gauges, labelled by its K/V policy.
struct PoolGauges {
  std::string kv;
  cache::Residency residency;
};

class Metrics {
 public:
  Metrics();
  void observe_ttft(double seconds);
  void observe_itl(double seconds);
  void observe_e2e(double seconds);
  // Runs fn(counters) under the lock.
  template <typename F>
  void update(F&& fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    fn(counters_);
  }
  ServeCounters counters() const;
  // The Prometheus text exposition (format 0.0.4) of everything, with the pools' gauges.
  std::string render(const std::vector<PoolGauges>& pools) const;

 private:
  mutable std::mutex mutex_;
  ServeCounters counters_;
  Histogram ttft_, itl_, e2e_;
};

}  // namespace kvpack::serve
