#include "attention/bench/measure.h"

#include <algorithm>
#include <vector>

#include "base/rng.h"
#include "base/timer.h"
#include "kvpack/attention.h"

namespace kvpack::attention::bench {
namespace {

constexpr int kMinRounds = 3;
constexpr int kBaselineLayers = 2;  // the baseline is slow: time it on this many layers once

std::vector<float> random_queries(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> q(static_cast<size_t>(s.n_q_heads) * s.head_dim);
  for (auto& x : q) x = static_cast<float>(rng.normal());
  return q;
}

// Median and minimum of per-call times (us) over rounds, each round one call per layer, after
// one warm-up round.
void time_rounds(const SyntheticLayers& layers, int n_q_heads, const float* q, float* out,
                 const Params& p, ThreadPool& pool, double min_seconds, Measurement& m) {
  Workspace ws;
  std::vector<double> per_call, cpu_per_call;
  const double start = now_seconds();
  for (int round = -1; round < kMinRounds || now_seconds() - start < min_seconds; ++round) {
    const double t0 = now_seconds();
    const double c0 = process_cpu_seconds();
    for (int l = 0; l < layers.n_layers(); ++l) {
      decode(layers.view(l), q, n_q_heads, out, p, pool, ws);
    }
    if (round >= 0) {
      per_call.push_back((now_seconds() - t0) * 1e6 / layers.n_layers());
      cpu_per_call.push_back((process_cpu_seconds() - c0) * 1e6 / layers.n_layers() / pool.size());
    }
  }
  std::sort(per_call.begin(), per_call.end());
  std::sort(cpu_per_call.begin(), cpu_per_call.end());
  m.us_per_call = per_call[per_call.size() / 2];
  m.us_min = per_call.front();
  m.cpu_us_per_call = cpu_per_call[cpu_per_call.size() / 2];
}

}  // namespace

Measurement measure_pair(format::FormatId k, format::FormatId v, const MeasureConfig& c,
                         ThreadPool& pool, const ReadProbe& probe) {
  Measurement m;
  m.k = k;
  m.v = v;
  m.context = c.context;
  const SyntheticLayers layers(k, v, c.shape, c.context, c.working_set, 42, c.shuffle_pages);
  m.layers = layers.n_layers();
  m.bytes_per_call = layers.bytes_per_call();
  Params p;
  p.codec_ops = c.codec_ops;
  m.k_kernel = p.codec_ops ? "codec ops" : kernel_info(*layers.view(0).k_codec).name;
  m.v_kernel = p.codec_ops ? "codec ops" : kernel_info(*layers.view(0).v_codec).name;
  const std::vector<float> q = random_queries(c.shape, 7);
  std::vector<float> out(q.size());
  const ReadProbe::Rates before = probe.measure_rates(pool);
  time_rounds(layers, c.shape.n_q_heads, q.data(), out.data(), p, pool, c.min_seconds, m);
  const ReadProbe::Rates after = probe.measure_rates(pool);
  m.bandwidth = std::max(before.wall, after.wall);
  m.cpu_bandwidth = std::max(before.cpu, after.cpu);
  if (c.baseline) {
    DequantBaseline base(c.shape, c.context);
    Workspace ws;
    const int n = std::min(kBaselineLayers, layers.n_layers());
    const double t0 = now_seconds();
    for (int l = 0; l < n; ++l) {
      decode(base.dequantize(layers.view(l), pool), q.data(), c.shape.n_q_heads, out.data(),
             Params{}, pool, ws);
    }
    m.baseline_us = (now_seconds() - t0) * 1e6 / n;
  }
  return m;
}

}  // namespace kvpack::attention::bench
