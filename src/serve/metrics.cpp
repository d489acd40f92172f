#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace kvpack::serve {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double x) {
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin());
  ++counts_[i];
  ++count_;
  sum_ += x;
}

namespace {

// vLLM's buckets, with finer ones below 10 ms: small models decode a token in a millisecond.
std::vector<double> ttft_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0};
}
std::vector<double> itl_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
          0.2,    0.3,   0.4,    0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
}
std::vector<double> e2e_buckets() {
  return {0.01, 0.05, 0.1,  0.3,  0.5,  0.8,  1.0,  1.5,  2.0,  2.5,
          5.0,  10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0};
}

class Writer {
 public:
  // A family's HELP and TYPE lines.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP kvpack:{} {}\n# TYPE kvpack:{} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, double value, std::string_view labels = {}) {
    if (labels.empty()) {
      out_ += fmt::format("kvpack:{} {}\n", name, value);
    } else {
      out_ += fmt::format("kvpack:{}{{{}}} {}\n", name, labels, value);
    }
  }
  void histogram(std::string_view name, std::string_view help, const Histogram& h) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds().size(); ++i) {
      cumulative += h.counts()[i];
      sample(fmt::format("{}_bucket", name), static_cast<double>(cumulative),
             fmt::format("le=\"{}\"", h.bounds()[i]));
    }
    sample(fmt::format("{}_bucket", name), static_cast<double>(h.count()), "le=\"+Inf\"");
    sample(fmt::format("{}_sum", name), h.sum());
    sample(fmt::format("{}_count", name), static_cast<double>(h.count()));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A label value with Prometheus' escapes.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void pool_gauges(Writer& w, const std::vector<PoolGauges>& pools) {
  const auto each = [&](std::string_view name, std::string_view help, auto value,
                        std::string_view type = "gauge") {
    w.family(name, type, help);
    for (const PoolGauges& p : pools) {
      w.sample(name, static_cast<double>(value(p.residency)),
               fmt::format("kv=\"{}\"", label_value(p.kv)));
    }
  };
  using R = cache::Residency;
  each("kv_cache_reserved_bytes", "Bytes of the KV page arena.",
       [](const R& r) { return r.reserved.bytes; });
  each("kv_cache_active_bytes", "Bytes of pages held by exactly one sequence.",
       [](const R& r) { return r.active.bytes; });
  each("kv_cache_shared_bytes", "Bytes of pages held by more than one sequence (shared prefixes).",
       [](const R& r) { return r.shared.bytes; });
  each("kv_cache_shared_saved_bytes",
       "Bytes sharing saves: shared pages' holders beyond the first.",
       [](const R& r) { return r.shared_saved_bytes(); });
  each("kv_cache_cached_bytes", "Bytes of unreferenced pages kept for prefix reuse (evictable).",
       [](const R& r) { return r.cached.bytes; });
  each("kv_cache_free_bytes", "Bytes of free pages.", [](const R& r) { return r.free.bytes; });
  each("kv_cache_usage_perc", "Fraction of the arena held by sequences (1 = full).",
       [](const R& r) {
         return r.reserved.pages == 0
                    ? 0.0
                    : static_cast<double>(r.active.pages + r.shared.pages) / r.reserved.pages;
       });
  each(
      "kv_cache_evictions_total", "Cached pages evicted for new data.",
      [](const R& r) { return r.counters.evictions; }, "counter");
}

}  // namespace

Metrics::Metrics() : ttft_(ttft_buckets()), itl_(itl_buckets()), e2e_(e2e_buckets()) {}

void Metrics::observe_ttft(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  ttft_.observe(s);
}
void Metrics::observe_itl(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  itl_.observe(s);
}
void Metrics::observe_e2e(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  e2e_.observe(s);
}

ServeCounters Metrics::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

std::string Metrics::render(const std::vector<PoolGauges>& pools) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const ServeCounters& c = counters_;
  Writer w;
  const auto gauge = [&](std::string_view name, std::string_view help, uint64_t v) {
    w.family(name, "gauge", help);
    w.sample(name, static_cast<double>(v));
  };
  const auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    w.family(name, "counter", help);
    w.sample(name, static_cast<double>(v));
  };
  gauge("num_requests_running", "Requests in the running batch.", c.requests_running);
  gauge("num_requests_waiting", "Requests queued for admission.", c.requests_waiting);
  counter("num_preemptions_total",
          "Requests preempted (pages freed, recomputed later) on a full pool.", c.preemptions);
  counter("prompt_tokens_total", "Prompt tokens of admitted requests, cached ones included.",
          c.prompt_tokens);
  counter("generation_tokens_total", "Tokens sampled.", c.generation_tokens);
  counter("prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          c.prefix_queries);
  counter("prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", c.prefix_hits);
  w.family("request_success_total", "counter", "Finished requests by finish reason.");
  w.sample("request_success_total", static_cast<double>(c.finished_stop),
           "finished_reason=\"stop\"");
  w.sample("request_success_total", static_cast<double>(c.finished_length),
           "finished_reason=\"length\"");
  w.sample("request_success_total", static_cast<double>(c.finished_aborted),
           "finished_reason=\"abort\"");
  counter("request_errors_total", "Requests that failed inside the engine.", c.finished_error);
  counter("requests_rejected_total", "Requests refused at admission (queue full or draining).",
          c.rejected);
  counter("engine_steps_total", "Engine steps that ran the model.", c.steps);
  counter("engine_step_rows_total", "Token rows those steps computed.", c.step_rows);
  counter("engine_forward_batches_total",
          "Batched forward passes: one per pool with rows per step, more after a failure.",
          c.forward_batches);
  counter("decode_kv_page_bytes_total",
          "K/V page bytes decode steps read, summed over sequences (each reads its page table).",
          c.decode_page_bytes);
  counter("decode_kv_unique_page_bytes_total",
          "Distinct K/V page bytes of those steps: what reading each shared page once would read.",
          c.decode_unique_page_bytes);
  counter("decode_kv_read_bytes_total",
          "K/V page bytes decode attention read: each shared prefix page once per step.",
          c.decode_read_bytes);
  pool_gauges(w, pools);
  w.histogram("time_to_first_token_seconds", "Time from arrival to the first sampled token.",
              ttft_);
  w.histogram("inter_token_latency_seconds",
              "Time between consecutive sampled tokens of a request.", itl_);
  w.histogram("e2e_request_latency_seconds", "Time from arrival to the last token.", e2e_);
  return w.take();
}

}  // namespace kvpack::serve
