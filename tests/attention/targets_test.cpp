// The SIMD kernels on every Highway target this CPU runs (AVX-512 with VNNI, AVX-512, AVX2,
// SSE4, ...), not only the best one, against the reference.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "kvpack/attention.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

// Restores normal target selection however the test ends.
struct TargetOverride {
  explicit TargetOverride(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~TargetOverride() { hwy::SetSupportedTargetsForTest(0); }
};

void check_targets(FormatId kf, FormatId vf, ThreadPool& pool) {
  const PagedKv kv(kf, vf, KvShape{2, 128, 128, 32, 300, 12}, Data::outliers, 5);
  const int n_q = 8;
  const auto q = kv.queries(3, n_q, 6);
  std::vector<float> want(3 * n_q * 128);
  reference(kv.view(), q.data(), 3, n_q, want.data(), Params{});
  int tried = 0;
  for (int64_t bit = 1; bit != 0 && bit <= HWY_SCALAR; bit <<= 1) {
    if ((hwy::SupportedTargets() & bit) == 0) continue;
    TargetOverride use(bit);
    const KernelInfo info = kernel_info(*kv.view().k_codec);
    Workspace ws;
    std::vector<float> dec(n_q * 128), pre(want.size());
    decode(kv.view(), q.data() + 2 * n_q * 128, n_q, dec.data(), Params{}, pool, ws);
    prefill(kv.view(), q.data(), 3, n_q, pre.data(), Params{}, pool, ws);
    const auto tol = testing::tolerance(kv.view(), q.data(), 3, n_q, Params{}, kv.max_key_norm());
    EXPECT_LT(testing::excess(pre, want, tol).worst, 1.0) << info.name;
    const std::vector<float> last_want(want.end() - n_q * 128, want.end());
    const std::vector<double> last_tol(tol.end() - n_q * 128, tol.end());
    EXPECT_LT(testing::excess(dec, last_want, last_tol).worst, 1.0) << info.name;
    std::printf("  checked %s / %s\n", info.name.c_str(),
                kernel_info(*kv.view().v_codec).name.c_str());
    ++tried;
  }
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

}  // namespace
}  // namespace kvpack::attention
