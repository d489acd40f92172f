// Whole decode and prefill calls on every SIMD target this CPU runs (AVX-512 with VNNI, AVX-512,
// AVX2 with and without AVX-VNNI, SSE4, the portable fallback), not only the best one, against
// the same-rounding reference (same_rounding.h).
#include <gtest/gtest.h>

#include "every_target.h"
#include "kvpack/attention.h"
#include "paged_kv.h"
#include "same_rounding.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

// Head dim d for K and V; simd_v: the V side must run a SIMD kernel (not the codec's ops).
void check_targets(FormatId kf, FormatId vf, ThreadPool& pool, int d = 128,
                   const Params& params = Params{}, bool simd_v = false) {
  const PagedKv kv(kf, vf, KvShape{2, d, d, 32, 300, 12}, Data::outliers, 5);
  const int n_q = 8;
  const size_t row = static_cast<size_t>(n_q) * d;
  const auto q = kv.queries(3, n_q, 6);
  int tried = 0;
  testing::on_every_target([&](const std::string& target, bool) {
    const KernelInfo info = kernel_info(*kv.view().k_codec, params);
    const KernelInfo v_info = kernel_info(*kv.view().v_codec, params);
    if (simd_v) {
      EXPECT_NE(v_info.name, "codec ops") << "d " << d;
    }
    Workspace ws;
    std::vector<float> dec(row), pre(3 * row);
    decode(kv.view(), q.data() + 2 * row, n_q, dec.data(), params, pool, ws);
    prefill(kv.view(), q.data(), 3, n_q, pre.data(), params, pool, ws);
    const testing::Expectation e = testing::same_rounding(kv.view(), q.data(), 3, n_q, params);
    const std::vector<float> expected(e.value.begin(), e.value.end());
    EXPECT_LT(testing::excess(pre, expected, e.tol).worst, 1.0)
        << info.name << " / " << v_info.name << " d " << d;
    const std::vector<float> last_want(expected.end() - row, expected.end());
    const std::vector<double> last_tol(e.tol.end() - row, e.tol.end());
    EXPECT_LT(testing::excess(dec, last_want, last_tol).worst, 1.0)
        << info.name << " / " << v_info.name << " d " << d;
    std::printf("  %s: checked %s / %s, d %d\n", target.c_str(), info.name.c_str(),
                v_info.name.c_str(), d);
    ++tried;
  });
  EXPECT_GE(tried, 1);
}

TEST(Targets, EveryTargetMatchesReference) {
  ThreadPool pool(2);
  const std::pair<FormatId, FormatId> pairs[] = {
      {FormatId::f16, FormatId::bf16},       {FormatId::q8, FormatId::q4},
      {FormatId::q4, FormatId::q8},          {FormatId::q4a, FormatId::q4a},
      {FormatId::turbo4, FormatId::turbo4},  {FormatId::turbo3, FormatId::turbo3},
      {FormatId::turbo2, FormatId::turbo2},  {FormatId::turbo3_qjl, FormatId::q8},
      {FormatId::turbo4_qjl, FormatId::q4a}, {FormatId::kivi4, FormatId::fp8},
      {FormatId::kivi2, FormatId::turbo4},   {FormatId::fp8, FormatId::q8}};
  for (auto [k, v] : pairs) check_targets(k, v, pool);
}

TEST(Targets, TurboValuesAtEveryHeadDimArrangement) {
  // The 2-bit value planes come in 64-channel lines; turbo3's 1-bit plane in blocks of 128
  // channels (two lines each) and, where d % 128 == 64, a last block of 64 with its own lane
  // arrangement (d 64: only that block; d 192: both kinds). Integer and f32 weights.
  ThreadPool pool(2);
  for (FormatId v : {FormatId::turbo3, FormatId::turbo2}) {
    for (int d : {64, 128, 192}) {
      for (bool exact : {false, true}) {
        Params p;
        p.exact_value_weights = exact;
        check_targets(FormatId::q8, v, pool, d, p, true);
      }
    }
  }
}

}  // namespace
}  // namespace kvpack::attention
