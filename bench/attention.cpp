// Google Benchmark cases for attention: whole one-layer decode calls per K/V pair (memory-bound,
// working set beyond the LLC), and the per-page kernels on cache-resident pages (compute cost:
// the number to drive below a page's DRAM time). `kvpack bench attention` is the full report.
// KVPACK_SIMD=avx2 (or any name src/base/simd_target.h knows) measures another target.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "attention/bench/synthetic.h"
#include "attention/kernels.h"
#include "attention/span.h"
#include "base/rng.h"
#include "base/simd_target.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

using format::FormatId;

std::vector<float> gaussian(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

// Decode over 512 MiB of pages (several layers), 2 threads, 32/8 heads, dim 128.
void BM_Decode(benchmark::State& state, FormatId k, FormatId v) {
  const bench::Shape shape;
  const int64_t context = state.range(0);
  const bench::SyntheticLayers layers(k, v, shape, context, size_t{512} << 20, 1);
  ThreadPool pool(2);
  Workspace ws;
  const auto q = gaussian(static_cast<size_t>(shape.n_q_heads) * shape.head_dim, 2);
  std::vector<float> out(q.size());
  int layer = 0;
  for (auto _ : state) {
    decode(layers.view(layer), q.data(), shape.n_q_heads, out.data(), Params{}, pool, ws);
    layer = (layer + 1) % layers.n_layers();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * layers.bytes_per_call()));
}

// One kernel over 4 cache-resident pages of one head; arguments: head dim, query rows (4: a GQA
// group of 4 as Llama 3's; 2 and head dim 64: the probe model's).
struct PageFixture {
  std::unique_ptr<format::Codec> codec;
  std::vector<uint8_t> pages;
  const uint8_t* blocks[4];
  std::vector<uint8_t> qbuf;
  std::vector<float> logits, acc;
  int d, rows;

  PageFixture(FormatId id, format::Role role, const benchmark::State& state)
      : d(static_cast<int>(state.range(0))), rows(static_cast<int>(state.range(1))) {
    codec = format::make_codec(id, {role, d, 32, 1, 3});
    pages.resize(codec->head_bytes() * 4);
    for (int p = 0; p < 4; ++p) {
      const auto x = gaussian(static_cast<size_t>(32) * d, 10 + p);
      codec->encode(0, x.data(), 32, pages.data() + p * codec->head_bytes());
      blocks[p] = pages.data() + p * codec->head_bytes();
    }
    logits.resize(rows * detail::logit_stride(32));
    for (auto& w : logits) w = 0.01f;
    acc.assign(rows * codec->acc_floats(), 0.0f);
  }
  // The 4 pages as a chunk of one head (head 0 of 1-head slices).
  detail::BlockSet set() const { return {blocks, 4, 0, 1, codec->head_bytes()}; }
};

void BM_ScorePages(benchmark::State& state, FormatId id) {
  PageFixture f(id, format::Role::K, state);
  const detail::KKernel& k = detail::select_k_kernel(*f.codec, false);
  f.qbuf.resize(f.rows * k.query_bytes(*f.codec));
  const auto q = gaussian(static_cast<size_t>(f.rows) * f.d, 5);
  k.prepare(*f.codec, 0, q.data(), f.rows, f.d, f.qbuf.data());
  detail::Prefetcher pf;
  for (auto _ : state) {
    k.score(*f.codec, f.set(), f.qbuf.data(), f.rows, f.logits.data(), detail::logit_stride(32),
            pf);
    benchmark::DoNotOptimize(f.logits.data());
  }
  state.SetItemsProcessed(state.iterations() * 4);  // pages
  state.SetLabel(std::string(k.name));
}

void BM_AccumulatePages(benchmark::State& state, FormatId id) {
  PageFixture f(id, format::Role::V, state);
  const detail::VKernel& v = detail::select_v_kernel(*f.codec, false);
  detail::Prefetcher pf;
  for (auto _ : state) {
    v.accumulate(*f.codec, f.set(), f.logits.data(), detail::logit_stride(32), f.rows, f.acc.data(),
                 pf);
    benchmark::DoNotOptimize(f.acc.data());
  }
  state.SetItemsProcessed(state.iterations() * 4);
  state.SetLabel(std::string(v.name));
}

void BM_SoftmaxStep(benchmark::State& state) {
  std::vector<float> logits = gaussian(4 * detail::logit_stride(32), 1);
  int lo[4] = {0, 0, 0, 0}, hi[4] = {128, 128, 128, 128};
  float m[4], l[4], alpha[4];
  for (auto _ : state) {
    // Same maxima every time: exp of (already exponentiated) values <= 1 - m stays finite.
    for (int r = 0; r < 4; ++r) m[r] = 4.0f, l[r] = 0;
    detail::softmax_step(logits.data(), detail::logit_stride(32), 4, 128, lo, hi, 0.0f, m, l,
                         alpha);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(state.iterations() * 4);  // pages' worth (128 tokens)
}

}  // namespace

#define KVPACK_PAIR(K, V)                                         \
  BENCHMARK_CAPTURE(BM_Decode, K##_##V, FormatId::K, FormatId::V) \
      ->Arg(4096)                                                 \
      ->Arg(32768)                                                \
      ->Unit(benchmark::kMicrosecond)                             \
      ->UseRealTime();
KVPACK_PAIR(f16, f16)
KVPACK_PAIR(q8, q8)
KVPACK_PAIR(q4, q8)
KVPACK_PAIR(turbo4, turbo4)
#undef KVPACK_PAIR

#define KVPACK_PAGES(F)                                                            \
  BENCHMARK_CAPTURE(BM_ScorePages, F, FormatId::F)->Args({128, 4})->Args({64, 2}); \
  BENCHMARK_CAPTURE(BM_AccumulatePages, F, FormatId::F)->Args({128, 4})->Args({64, 2});
KVPACK_PAGES(f16)
KVPACK_PAGES(bf16)
KVPACK_PAGES(q8)
KVPACK_PAGES(q4)
KVPACK_PAGES(q4a)
KVPACK_PAGES(turbo4)
KVPACK_PAGES(turbo3)
KVPACK_PAGES(turbo2)
KVPACK_PAGES(fp8)
#undef KVPACK_PAGES
// Key-only formats.
BENCHMARK_CAPTURE(BM_ScorePages, kivi4, FormatId::kivi4)->Args({128, 4});
BENCHMARK_CAPTURE(BM_ScorePages, kivi2, FormatId::kivi2)->Args({128, 4});
BENCHMARK_CAPTURE(BM_ScorePages, turbo4_qjl, FormatId::turbo4_qjl)->Args({128, 4});
BENCHMARK_CAPTURE(BM_ScorePages, turbo3_qjl, FormatId::turbo3_qjl)->Args({128, 4});
BENCHMARK(BM_SoftmaxStep);

}  // namespace kvpack::attention

// BENCHMARK_MAIN, plus the forced SIMD target (KVPACK_SIMD, src/base/simd_target.h) and its
// name in the context block and JSON, so a run says which kernels it measured.
int main(int argc, char** argv) {
  kvpack::apply_simd_env();
  benchmark::AddCustomContext("simd_target", kvpack::active_simd_target());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
