// Shared-prefix decode: 16 sessions that share a 2,048-token prefix (forked in the paged cache,
// so their page tables hold the same page ids) and each hold 64 tokens of their own, decoded one
// step at a time through every layer with attention::decode_batch, reading each shared page once
// for all sessions (Params::share_prefixes) and, in the same iterations, the naive way (each
// session reads its whole page table). Counters: the K/V page bytes each step streams both ways
// (DecodeStats) and their ratio, each way's step time and the speedup: wall, and cpu (process
// CPU time / threads: what an idle machine would show when others share the cores).
//
//   bench_shared_prefix [--benchmark_filter=q8]
//
// Shape: 8 layers of 32 query heads over 8 KV heads (GQA 4), head dim 128, 32-token pages
// (Llama-3-8B's attention); 2 threads. The shared prefix is 8 MiB per layer in f16, 64 MiB in
// all: beyond this machine's last-level cache, so the shared way saves DRAM traffic, while the
// naive way re-reads the prefix 16 times, mostly from cache after the first.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "attention/kernels.h"
#include "base/rng.h"
#include "base/timer.h"
#include "kvpack/attention.h"
#include "kvpack/cache.h"

namespace kvpack::bench {
namespace {

constexpr int kLayers = 8;
constexpr int kKvHeads = 8;
constexpr int kQHeads = 32;
constexpr int kDim = 128;
constexpr int kPrefix = 2048;
constexpr int kOwn = 64;

std::vector<float> gaussian(size_t n, Rng& rng) {
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

// Adds n tokens of Gaussian K/V to every layer of seq.
void fill(cache::Cache& c, cache::SeqId seq, int n, int32_t first_token, Rng& rng) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = first_token + i;
  c.add_tokens(seq, tokens);
  const size_t floats = static_cast<size_t>(n) * kKvHeads * kDim;
  for (int layer = 0; layer < kLayers; ++layer) {
    const auto k = gaussian(floats, rng);
    const auto v = gaussian(floats, rng);
    c.append(seq, layer, k.data(), v.data(), n);
  }
}

void SharedPrefix(benchmark::State& state, const char* policy) {
  const int n_seqs = static_cast<int>(state.range(0));
  cache::CacheConfig cfg;
  cfg.n_layers = kLayers;
  cfg.n_kv_heads = kKvHeads;
  cfg.head_dim_k = cfg.head_dim_v = kDim;
  cfg.policy = format::KVPolicy::parse(policy);
  cfg.n_pages = static_cast<uint32_t>(kPrefix / 32 + n_seqs * (kOwn / 32 + 2) + 8);
  cache::Cache cache(cfg);
  Rng rng(1);
  const cache::SeqId root = cache.create();
  fill(cache, root, kPrefix, 0, rng);
  std::vector<cache::SeqId> seqs;
  for (int i = 0; i < n_seqs; ++i) {
    seqs.push_back(cache.fork(root));
    fill(cache, seqs.back(), kOwn + 1, 100000 + i * 1000, rng);
  }
  std::vector<std::vector<cache::LayerView>> views(kLayers);
  for (int layer = 0; layer < kLayers; ++layer) {
    for (cache::SeqId s : seqs) views[static_cast<size_t>(layer)].push_back(cache.view(s, layer));
  }
  const auto q = gaussian(static_cast<size_t>(n_seqs) * kQHeads * kDim, rng);
  std::vector<float> out(q.size());
  ThreadPool pool(2);
  attention::Workspace ws;
  attention::Params shared, naive;
  naive.share_prefixes = false;
  double wall[2] = {0, 0}, cpu[2] = {0, 0};
  uint64_t bytes[2] = {0, 0};
  for (auto _ : state) {
    for (int way = 0; way < 2; ++way) {
      const double t0 = now_seconds(), c0 = process_cpu_seconds();
      for (int layer = 0; layer < kLayers; ++layer) {
        attention::DecodeStats stats;
        attention::decode_batch(views[static_cast<size_t>(layer)], q.data(), kQHeads, out.data(),
                                way == 0 ? shared : naive, pool, ws, &stats);
        bytes[way] += stats.bytes;
      }
      benchmark::DoNotOptimize(out.data());
      wall[way] += now_seconds() - t0;
      cpu[way] += process_cpu_seconds() - c0;
    }
  }
  const auto steps = static_cast<double>(state.iterations());
  state.counters["shared_MB/step"] = static_cast<double>(bytes[0]) / steps / 1e6;
  state.counters["naive_MB/step"] = static_cast<double>(bytes[1]) / steps / 1e6;
  state.counters["bytes_ratio"] = static_cast<double>(bytes[1]) / static_cast<double>(bytes[0]);
  state.counters["shared_ms/step"] = wall[0] / steps * 1e3;
  state.counters["naive_ms/step"] = wall[1] / steps * 1e3;
  state.counters["speedup"] = wall[1] / wall[0];
  state.counters["cpu_shared_ms/step"] = cpu[0] / steps * 1e3 / pool.size();
  state.counters["cpu_naive_ms/step"] = cpu[1] / steps * 1e3 / pool.size();
  state.counters["cpu_speedup"] = cpu[1] / cpu[0];
  state.SetLabel(fmt::format("{} {} sessions x ({} shared + {} own) tokens, {} threads, {}", policy,
                             n_seqs, kPrefix, kOwn + 1, pool.size(),
                             attention::detail::simd_target_name()));
}

BENCHMARK_CAPTURE(SharedPrefix, f16, "k=f16,v=f16")
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(SharedPrefix, q8, "k=q8,v=q8")
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(SharedPrefix, turbo4, "k=turbo4,v=turbo4")
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace kvpack::bench

BENCHMARK_MAIN();
