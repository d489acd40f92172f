// Attention over views produced by the real paged cache (src/cache): pages allocated and encoded
// by the cache, a partly filled tail and a high-precision window, for the done-when pairs.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "base/rng.h"
#include "kvpack/attention.h"
#include "kvpack/cache.h"
#include "paged_kv.h"
#include "same_rounding.h"

namespace kvpack::attention {
namespace {

using format::FormatId;

std::vector<float> gaussian(size_t n, Rng& rng) {
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

void check_cache_pair(FormatId k, FormatId v, int hp_window) {
  cache::CacheConfig c;
  c.n_layers = 1;
  c.n_kv_heads = 2;
  c.head_dim_k = c.head_dim_v = 128;
  c.page_tokens = 32;
  c.policy = format::KVPolicy(k, v);
  c.n_pages = 64;
  c.hp_window = hp_window;
  c.salt = "attention test";
  cache::Cache cache(c);
  const cache::SeqId seq = cache.create();
  Rng rng(7);
  const int n = 300, n_new = 6, n_q = 8;
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 1);
  cache.add_tokens(seq, ids);
  const auto keys = gaussian(static_cast<size_t>(n) * 2 * 128, rng);
  const auto vals = gaussian(keys.size(), rng);
  cache.append(seq, 0, keys.data(), vals.data(), n);
  const cache::LayerView view = cache.view(seq, 0);
  ASSERT_EQ(view.n_tokens(), n);
  const auto q = gaussian(static_cast<size_t>(n_new) * n_q * 128, rng);
  std::vector<float> got(static_cast<size_t>(n_new) * n_q * 128);
  ThreadPool pool(2);
  Workspace ws;
  prefill(view, q.data(), n_new, n_q, got.data(), Params{}, pool, ws);
  const testing::Expectation e = testing::same_rounding(view, q.data(), n_new, n_q, Params{});
  const std::vector<float> want(e.value.begin(), e.value.end());
  EXPECT_LT(testing::excess(got, want, e.tol).worst, 1.0)
      << format::info(k).name << "/" << format::info(v).name << " window " << hp_window << " tail "
      << view.tail_tokens;
  std::vector<float> dec(static_cast<size_t>(n_q) * 128);
  decode(view, q.data() + (n_new - 1) * n_q * 128, n_q, dec.data(), Params{}, pool, ws);
  const std::vector<float> last(want.end() - n_q * 128, want.end());
  const std::vector<double> last_tol(e.tol.end() - n_q * 128, e.tol.end());
  EXPECT_LT(testing::excess(dec, last, last_tol).worst, 1.0) << format::info(k).name;
}

TEST(CacheViews, DecodeAndPrefillMatchReference) {
  for (int window : {0, 64}) {
    check_cache_pair(FormatId::f16, FormatId::f16, window);
    check_cache_pair(FormatId::q8, FormatId::q8, window);
    check_cache_pair(FormatId::q4, FormatId::q8, window);
    check_cache_pair(FormatId::turbo4, FormatId::turbo4, window);
  }
}

}  // namespace
}  // namespace kvpack::attention
