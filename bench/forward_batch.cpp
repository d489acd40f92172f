// Decode steps of N concurrent sequences: one batched forward pass (Forward::eval_batch, the
// weights streamed once for all N rows, decode attention in one decode_batch call) against N
// single-sequence passes (Forward::eval, the weights streamed N times), both timed in the same
// iterations on the same model, so the ratio holds on a loaded machine too.
//
//   bench_forward_batch [--benchmark_filter=Decode/16]
//
// The model: a synthetic Llama of Q8_0 weights (8 layers, 1024 wide, FFN 2816, 32000 tokens:
// ~150 MB of weights; beyond the last-level cache of most machines, though not of a server CPU
// with hundreds of MB of L3, where the gain is the matmuls' reuse of each weight block across
// rows rather than DRAM traffic), K/V f16, sequences 32 tokens deep.
// Counters: tok/s (wall) and cpu_tok/s (tokens per process CPU second / threads: what an idle
// machine would show when others share the cores) for each way, and their ratios.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <filesystem>

#include "base/timer.h"
#include "kvpack/model.h"
#include "model/matmul.h"
#include "model/synthetic_model.h"

namespace kvpack::bench {
namespace {

constexpr int kDepth = 32;  // tokens in each sequence before the timed steps
constexpr int kSteps = 32;  // timed steps before the sequences are cut back to kDepth

const model::Model& bench_model() {
  static const std::unique_ptr<model::Model> m = [] {
    model::SyntheticModel s;
    s.arch = "llama";
    s.n_layers = 8;
    s.n_embd = 1024;
    s.n_heads = 16;
    s.n_kv_heads = 4;
    s.head_dim = 64;
    s.n_ff = 2816;
    s.n_vocab = 32000;
    s.type = model::GgmlType::Q8_0;
    s.embd_type = model::GgmlType::Q8_0;
    const std::string path =
        (std::filesystem::temp_directory_path() / "kvpack_bench_forward_batch.gguf").string();
    model::synthetic_model(s).write(path);
    return model::Model::load(path);
  }();
  return *m;
}

// Two sets of N sequences in one cache: one decoded batched, the other one by one.
void Decode(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const model::Model& model = bench_model();
  ThreadPool pool;
  cache::CacheConfig c =
      model.cache_config(format::KVPolicy::parse("k=f16,v=f16"), kDepth + kSteps + 1, 32, 64);
  c.n_pages *= static_cast<uint32_t>(2 * n);
  cache::Cache cache(c);
  model::Forward fwd(model, cache, pool, {.max_chunk = 64});
  std::vector<cache::SeqId> batched, single;
  std::vector<int32_t> prompt(kDepth);
  for (int i = 0; i < kDepth; ++i) prompt[static_cast<size_t>(i)] = (7 * i + 3) % 32000;
  for (int i = 0; i < 2 * n; ++i) {
    const cache::SeqId s = cache.create();
    fwd.eval(s, prompt);
    (i < n ? batched : single).push_back(s);
  }
  std::vector<int32_t> next(static_cast<size_t>(n), 1);
  std::vector<model::BatchItem> items(static_cast<size_t>(n));
  double wall[2] = {0, 0}, cpu[2] = {0, 0};
  int steps = 0;
  for (auto _ : state) {
    if (steps == kSteps) {
      state.PauseTiming();
      for (int i = 0; i < n; ++i) {
        cache.truncate(batched[static_cast<size_t>(i)], kSteps);
        cache.truncate(single[static_cast<size_t>(i)], kSteps);
      }
      steps = 0;
      state.ResumeTiming();
    }
    double t0 = now_seconds(), c0 = process_cpu_seconds();
    for (int i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(i);
      items[k] = {batched[k], {&next[k], 1}};
    }
    benchmark::DoNotOptimize(fwd.eval_batch(items).data());
    double t1 = now_seconds(), c1 = process_cpu_seconds();
    wall[0] += t1 - t0;
    cpu[0] += c1 - c0;
    for (int i = 0; i < n; ++i) {
      benchmark::DoNotOptimize(fwd.eval(single[static_cast<size_t>(i)], {&next[0], 1}).data());
    }
    wall[1] += now_seconds() - t1;
    cpu[1] += process_cpu_seconds() - c1;
    ++steps;
  }
  const double tokens = static_cast<double>(state.iterations()) * n;
  const double threads = pool.size();
  state.counters["batched_tok/s"] = tokens / wall[0];
  state.counters["single_tok/s"] = tokens / wall[1];
  state.counters["speedup"] = wall[1] / wall[0];
  state.counters["cpu_batched_tok/s"] = tokens / (cpu[0] / threads);
  state.counters["cpu_single_tok/s"] = tokens / (cpu[1] / threads);
  state.counters["cpu_speedup"] = cpu[1] / cpu[0];
  state.SetLabel(fmt::format("{} threads={}", model::matmul_target(), pool.size()));
}

BENCHMARK(Decode)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2)
    ->UseRealTime();

}  // namespace
}  // namespace kvpack::bench

BENCHMARK_MAIN();
