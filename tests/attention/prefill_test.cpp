// Prefill against the reference, and decode and prefill agreeing on the same inputs.
#include <gtest/gtest.h>

#include "kvpack/attention.h"
#include "paged_kv.h"
#include "same_rounding.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

void check_prefill(FormatId k, FormatId v, const KvShape& s, int group, int n_new, Data data,
                   const Params& p, ThreadPool& pool) {
  const PagedKv kv(k, v, s, data, 500 + n_new);
  const int n_q = group * s.n_kv_heads;
  const auto q = kv.queries(n_new, n_q, 21);
  std::vector<float> want(static_cast<size_t>(n_new) * n_q * s.head_dim_v);
  reference(kv.view(), q.data(), n_new, n_q, want.data(), p);
  Workspace ws;
  std::vector<float> got(want.size());
  prefill(kv.view(), q.data(), n_new, n_q, got.data(), p, pool, ws);
  const auto tol = testing::tolerance(kv.view(), q.data(), n_new, n_q, p, kv.max_key_norm());
  const auto e = testing::excess(got, want, tol);
  EXPECT_LT(e.worst, 1.0) << format::info(k).name << "/" << format::info(v).name
                          << " tokens=" << s.n_tokens << " new=" << n_new << " at " << e.index;
}

TEST(Prefill, MatchesReference) {
  ThreadPool pool(2);
  for (int n_new : {1, 5, 17, 40}) {
    for (Data d : {Data::gaussian, Data::sink}) {
      check_prefill(FormatId::f16, FormatId::f16, KvShape{2, 64, 64, 32, 150, 22}, 4, n_new, d,
                    Params{}, pool);
      check_prefill(FormatId::bf16, FormatId::f32, KvShape{1, 128, 128, 32, 64, 0}, 8, n_new, d,
                    Params{}, pool);
      check_prefill(FormatId::f16, FormatId::bf16, KvShape{2, 128, 128, 32, 460, 12}, 1, n_new, d,
                    Params{}, pool);
    }
  }
}

TEST(Prefill, WholePromptWithOptions) {
  ThreadPool pool(2);
  std::vector<float> sinks(8, 0.5f);
  Params p;
  p.window = 24;
  p.softcap = 30.0f;
  p.sinks = sinks.data();
  // The whole context is new: the first query sees one key.
  check_prefill(FormatId::f16, FormatId::f16, KvShape{2, 64, 64, 32, 70, 6}, 4, 70, Data::outliers,
                p, pool);
  check_prefill(FormatId::f32, FormatId::bf16, KvShape{2, 64, 64, 16, 70, 6}, 4, 70, Data::gaussian,
                Params{}, pool);
}

TEST(Prefill, CompressedFormatsMatchTheSameRoundingReference) {
  // The specialised kernels with their int8 queries and integer value weights, each query row
  // masked to its own causal range and window.
  ThreadPool pool(2);
  std::vector<float> sinks(8, -0.5f);
  Params options;
  options.window = 40;
  options.softcap = 20.0f;
  options.sinks = sinks.data();
  const std::pair<FormatId, FormatId> pairs[] = {
      {FormatId::q8, FormatId::q4},         {FormatId::q4a, FormatId::q8},
      {FormatId::turbo4, FormatId::turbo3}, {FormatId::turbo3_qjl, FormatId::turbo4},
      {FormatId::kivi4, FormatId::q4a},     {FormatId::turbo2, FormatId::fp8}};
  for (auto [k, v] : pairs) {
    for (const Params& p : {Params{}, options}) {
      const PagedKv kv(k, v, KvShape{2, 64, 64, 32, 200, 8}, Data::outliers, 9);
      const int n_q = 8, n_new = 40;
      const auto q = kv.queries(n_new, n_q, 3);
      Workspace ws;
      std::vector<float> got(static_cast<size_t>(n_new) * n_q * 64);
      prefill(kv.view(), q.data(), n_new, n_q, got.data(), p, pool, ws);
      const testing::Expectation e = testing::same_rounding(kv.view(), q.data(), n_new, n_q, p);
      const std::vector<float> want(e.value.begin(), e.value.end());
      const auto x = testing::excess(got, want, e.tol);
      EXPECT_LT(x.worst, 1.0) << format::info(k).name << "/" << format::info(v).name
                              << (p.window ? " with options" : "") << " at " << x.index;
    }
  }
}

TEST(Prefill, LastRowAgreesWithDecode) {
  ThreadPool pool(2);
  const PagedKv kv(FormatId::f16, FormatId::f16, KvShape{2, 128, 128, 32, 333, 13}, Data::sink, 8);
  const int n_q = 8, n_new = 9;
  const auto q = kv.queries(n_new, n_q, 4);
  Workspace ws;
  std::vector<float> pre(static_cast<size_t>(n_new) * n_q * 128), dec(n_q * 128);
  prefill(kv.view(), q.data(), n_new, n_q, pre.data(), Params{}, pool, ws);
  decode(kv.view(), q.data() + (n_new - 1) * n_q * 128, n_q, dec.data(), Params{}, pool, ws);
  // Both are within the tolerance of the same reference row, so within twice it of each other.
  const auto tol = testing::tolerance(kv.view(), q.data() + (n_new - 1) * n_q * 128, 1, n_q,
                                      Params{}, kv.max_key_norm());
  const std::vector<float> last(pre.end() - n_q * 128, pre.end());
  std::vector<double> twice(tol);
  for (auto& t : twice) t *= 2;
  EXPECT_LT(testing::excess(last, dec, twice).worst, 1.0);
}

}  // namespace
}  // namespace kvpack::attention
