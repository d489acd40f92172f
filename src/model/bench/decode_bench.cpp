#include "model/bench/decode_bench.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/rng.h"
#include "base/timer.h"
#include "model/sampler.h"

namespace kvpack::model::bench {
namespace {

// Tokens appended per call while filling: whole pages, a bounded buffer.
constexpr int kFillChunk = 256;

std::vector<int32_t> arbitrary_ids(int64_t n, int n_vocab, Rng& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(n_vocab)));
  return ids;
}

// Appends `depth` tokens of random unit-scale K/V to every layer of seq.
void fill_kv(cache::Cache& cache, cache::SeqId seq, const ModelSpec& hp, int64_t depth, Rng& rng) {
  // k: (kFillChunk, n_kv_heads, head_dim_k), v: (kFillChunk, n_kv_heads, head_dim_v); reused for
  // every chunk and layer: the values do not matter for speed, only that they are finite.
  std::vector<float> k(static_cast<size_t>(kFillChunk) * hp.k_dim());
  std::vector<float> v(static_cast<size_t>(kFillChunk) * hp.v_dim());
  for (float& x : k) x = static_cast<float>(rng.normal());
  for (float& x : v) x = static_cast<float>(rng.normal());
  for (int64_t at = 0; at < depth; at += kFillChunk) {
    const int n = static_cast<int>(std::min<int64_t>(kFillChunk, depth - at));
    cache.add_tokens(seq, arbitrary_ids(n, hp.n_vocab, rng));
    for (int l = 0; l < hp.n_layers(); ++l) cache.append(seq, l, k.data(), v.data(), n);
  }
}

uint64_t kv_bytes_at(const cache::Cache& cache, int64_t tokens) {
  const cache::CacheConfig& c = cache.config();
  const uint64_t pages = static_cast<uint64_t>(tokens / c.page_tokens);
  const uint64_t tail = static_cast<uint64_t>(tokens % c.page_tokens) * c.n_layers * c.n_kv_heads *
                        (c.head_dim_k + c.head_dim_v) * sizeof(float);
  return pages * cache.page_bytes() + tail;
}

void summarize(DecodeResult& r) {
  double sum = 0;
  for (double x : r.tokens_per_s) sum += x;
  r.mean_tokens_per_s = sum / r.tokens_per_s.size();
  double var = 0;
  for (double x : r.tokens_per_s) var += (x - r.mean_tokens_per_s) * (x - r.mean_tokens_per_s);
  r.stddev_tokens_per_s =
      r.tokens_per_s.size() > 1 ? std::sqrt(var / (r.tokens_per_s.size() - 1)) : 0.0;
}

}  // namespace

std::vector<DecodeResult> bench_decode(const Model& model, const format::KVPolicy& policy,
                                       const DecodeBenchConfig& config, ThreadPool& pool,
                                       const ReadProbe& probe) {
  if (config.n_decode < 1 || config.repetitions < 1) {
    fail("bench decode: -n and -r must be at least 1 (got {} and {})", config.n_decode,
         config.repetitions);
  }
  const ModelSpec& hp = model.spec();
  const int64_t deepest = *std::max_element(config.depths.begin(), config.depths.end());
  // One warm-up step beyond the timed ones.
  const int64_t capacity = deepest + config.n_decode + 1;
  if (capacity > hp.n_ctx_train) {
    fail("bench decode: depth {} + {} steps exceeds the model's context of {} tokens", deepest,
         config.n_decode, hp.n_ctx_train);
  }
  cache::Cache cache(model.cache_config(policy, capacity, config.page_tokens));
  Forward fwd(model, cache, pool, {.max_chunk = 256});
  Rng rng(config.seed);
  std::vector<DecodeResult> out;
  for (int64_t depth : config.depths) {
    DecodeResult r;
    r.policy = policy;
    r.depth = depth;
    const cache::SeqId seq = cache.create();
    double start = now_seconds();
    if (config.fill == Fill::kv) {
      fill_kv(cache, seq, hp, depth, rng);
    } else if (depth > 0) {
      fwd.eval(seq, arbitrary_ids(depth, hp.n_vocab, rng));
    }
    r.fill_seconds = now_seconds() - start;
    int32_t id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(hp.n_vocab)));
    fwd.eval(seq, {&id, 1});  // warm-up: workspaces, page faults of the step's first page
    double cpu = 0;
    for (int rep = 0; rep < config.repetitions; ++rep) {
      start = now_seconds();
      const double cpu0 = process_cpu_seconds();
      for (int i = 0; i < config.n_decode; ++i) {
        id = argmax(fwd.eval(seq, {&id, 1}));
      }
      r.tokens_per_s.push_back(config.n_decode / (now_seconds() - start));
      cpu += (process_cpu_seconds() - cpu0) / pool.size();
      cache.truncate(seq, config.n_decode);
    }
    summarize(r);
    r.cpu_tokens_per_s = config.n_decode * config.repetitions / cpu;
    r.kernels = attention::report_kernels(cache);
    r.bandwidth = probe.measure(pool);
    r.weight_bytes = model.weights().step_bytes();
    r.kv_bytes = kv_bytes_at(cache, depth + 1 + config.n_decode / 2);
    r.bytes_per_step = r.weight_bytes + r.kv_bytes;
    cache.free(seq);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kvpack::model::bench
