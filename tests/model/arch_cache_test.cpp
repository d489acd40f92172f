// Decoding token by token through the paged, compressed cache gives the logits of a full
// recompute, for every architecture, at positions far past the sliding window (64 tokens in the
// fixtures). The reference is one prefill of the whole sequence through f32 K/V.
//
// Tolerances, in units of the logits' spread sigma at each position:
//  - f32 decode steps: the kernels' f32 sums in another order (kF32Kernels relative) are all
//    that differs. How much a relative perturbation of K and V moves this model's logits is
//    measured with bf16 K/V (rounding 2^-8/sqrt(3) RMS) in a full recompute and scaled down.
//  - f16 and q8/q8: "within the cache's own error": the policy's own full recompute against the
//    f32 one gives the RMS its roundings cause; decode steps see the same roundings (more of the
//    recent tokens still unencoded).
//  A logit may differ by kZ of that RMS. A wrong window or a page read after its release moves
//  logits by tens (fixtures README), far outside either.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "arch_fixture.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

constexpr double kBF16 = 0x1p-8 / 1.7320508075688772;
// f32 sums over up to 512 terms in another order: sqrt(512) u relative.
constexpr double kF32Kernels = 22.6 * 0x1p-24;
// The largest of ~3e5 logit differences against their RMS: ~5 for Gaussian ones, 7 measured.
constexpr double kZ = 10;
constexpr int kPrefill = 16;  // tokens prefilled before the decode steps

// Logits of `ids` in one prefill through a cache of `policy`: [n][n_vocab].
std::vector<float> recompute(const Model& model, std::span<const int32_t> ids,
                             const format::KVPolicy& policy, ThreadPool& pool,
                             ForwardOptions options) {
  cache::Cache cache(
      model.cache_config(policy, static_cast<int64_t>(ids.size()), 32, /*step_chunk=*/0));
  options.max_chunk = static_cast<int>(ids.size());
  std::vector<float> out(ids.size() * static_cast<size_t>(model.spec().n_vocab));
  Forward(model, cache, pool, std::move(options)).eval_all(cache.create(), ids, out.data());
  return out;
}

class ArchCache : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchCache, DecodeMatchesFullRecomputeFarPastTheWindow) {
  const std::string arch = GetParam();
  KVPACK_SHARED_FILE(model_path, fmt::format("models/arch/models/{}-f16.gguf", arch));
  KVPACK_SHARED_FILE(gold_path, fmt::format("models/arch/gold/{}-f16.code.json", arch));
  const auto model = Model::load(model_path.string());
  const testing::ArchGold gold = testing::read_arch_gold(gold_path.string());
  std::vector<int32_t> ids = gold.prompt_ids;
  ids.insert(ids.end(), gold.gen_ids.begin(), gold.gen_ids.end());
  const auto n = static_cast<int64_t>(ids.size());  // 320-340: five windows and more
  const auto n_vocab = static_cast<size_t>(model->spec().n_vocab);
  ThreadPool pool(2);

  // Mixture of experts: the candidates take the reference's experts, so that a router near-tie
  // (routing is tested against llama.cpp in arch_fixture_test.cpp) cannot hide what this tests.
  std::map<std::pair<int, int64_t>, std::vector<int32_t>> routes;
  ForwardOptions record{.max_chunk = 512};
  record.route = [&](int l, int64_t p, std::span<int32_t> e) {
    routes[{l, p}].assign(e.begin(), e.end());
  };
  const format::KVPolicy f32(format::FormatId::f32, format::FormatId::f32);
  const std::vector<float> want = recompute(*model, ids, f32, pool, record);
  ForwardOptions follow;
  follow.route = [&](int l, int64_t p, std::span<int32_t> e) {
    const std::vector<int32_t>& r = routes.at({l, p});
    std::copy(r.begin(), r.end(), e.begin());
  };
  // Each policy's own error: its full recompute against the f32 one, in units of the logits'
  // spread (RMS over positions and vocabulary).
  const auto own_error = [&](const format::KVPolicy& policy) {
    const std::vector<float> got = recompute(*model, ids, policy, pool, follow);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* ref = want.data() + static_cast<size_t>(i) * n_vocab;
      const double sigma = testing::spread({ref, n_vocab});
      for (size_t v = 0; v < n_vocab; ++v) {
        const double d = (got[static_cast<size_t>(i) * n_vocab + v] - ref[v]) / sigma;
        sq += d * d;
      }
    }
    return std::sqrt(sq / (static_cast<double>(n) * n_vocab));
  };
  // f32 decode steps differ from the f32 prefill only by the kernels' f32 sums: bf16's response
  // scaled from its rounding (2^-8) to theirs (kF32Kernels).
  const double s_bf16 = own_error(format::KVPolicy(format::FormatId::bf16, format::FormatId::bf16));
  for (const char* name : {"k=f32,v=f32", "k=f16,v=f16", "k=q8,v=q8"}) {
    const format::KVPolicy policy = format::KVPolicy::parse(name);
    const double s = policy == f32 ? s_bf16 * kF32Kernels / kBF16 : own_error(policy);
    cache::Cache cache(model->cache_config(policy, n));
    Forward fwd(*model, cache, pool, follow);
    const cache::SeqId seq = cache.create();
    fwd.eval(seq, std::span(ids).first(kPrefill));
    double worst = 0;
    int64_t worst_at = 0;
    for (int64_t i = kPrefill; i < n; ++i) {
      const std::span<const float> got = fwd.eval(seq, {&ids[static_cast<size_t>(i)], 1});
      const float* ref = want.data() + static_cast<size_t>(i) * n_vocab;
      const double tol = kZ * s * testing::spread({ref, n_vocab});
      for (size_t v = 0; v < n_vocab; ++v) {
        const double d = std::fabs(got[v] - ref[v]) / tol;
        if (d > worst) worst = d, worst_at = i;
      }
    }
    EXPECT_LE(worst, 1.0) << name << " at position " << worst_at;
    // Sliding layers decoded this far hold only their window's pages: the rest was released.
    for (int l = 0; l < model->spec().n_layers(); ++l) {
      const int64_t window = model->spec().layers[static_cast<size_t>(l)].window;
      const cache::LayerView view = cache.view(seq, l);
      if (window > 0) {
        EXPECT_GT(view.first_token(), n - window - 32) << "layer " << l;
      } else {
        EXPECT_EQ(view.first_token(), 0) << "layer " << l;
      }
    }
    std::printf("[ %s %s ] s %.2e worst |d|/tol %.3f at position %lld of %lld\n", arch.c_str(),
                name, s, worst, static_cast<long long>(worst_at), static_cast<long long>(n));
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, ArchCache,
                         ::testing::Values("llama", "qwen2", "qwen3", "qwen3moe", "gemma2",
                                           "gemma3"));

}  // namespace
}  // namespace kvpack::model
