// Views whose first pages were released (a sliding-window layer's cache, LayerView::first_page):
// under a window that does not reach the released tokens, decode, prefill and the reference give
// exactly what they give over the full view, since the visible pages, their absolute positions
// and the split of the work are the same. A window that would reach them is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "base/rng.h"
#include "error_of.h"
#include "kvpack/attention.h"
#include "kvpack/cache.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using kvpack::testing::error_of;

// The view without its first `released` pages.
cache::LayerView released(cache::LayerView v, size_t pages) {
  v.page_ids = v.page_ids.subspan(pages);
  v.first_page += pages;
  return v;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Outputs {
  std::vector<float> decode, prefill, reference;
};

// Decode of the last query, prefill of all n_new and the reference for the last two (it works
// in double over every token: slow).
Outputs run(const cache::LayerView& view, const std::vector<float>& q, int n_new, int n_q,
            const Params& params, ThreadPool& pool) {
  const size_t row = static_cast<size_t>(n_q) * view.head_dim_v;
  Outputs o{std::vector<float>(row), std::vector<float>(n_new * row), std::vector<float>(2 * row)};
  Workspace ws;
  const size_t qrow = static_cast<size_t>(n_q) * view.head_dim_k;
  decode(view, q.data() + (n_new - 1) * qrow, n_q, o.decode.data(), params, pool, ws);
  prefill(view, q.data(), n_new, n_q, o.prefill.data(), params, pool, ws);
  if (!params.codec_ops) {
    reference(view, q.data() + (n_new - 2) * qrow, 2, n_q, o.reference.data(), params);
  }
  return o;
}

TEST(ReleasedPages, ViewStartingLaterMatchesTheFullViewUnderTheWindow) {
  ThreadPool pool(3);
  const std::pair<FormatId, FormatId> pairs[] = {{FormatId::f16, FormatId::f16},
                                                 {FormatId::q8, FormatId::q8},
                                                 {FormatId::q4, FormatId::q8},
                                                 {FormatId::turbo4, FormatId::turbo4}};
  for (const auto& [k, v] : pairs) {
    testing::KvShape shape;
    shape.n_tokens = 3000;
    shape.tail_tokens = 24;
    const testing::PagedKv kv(k, v, shape, testing::Data::gaussian, 5);
    const int n_new = 40, n_q = 8;
    const std::vector<float> q = kv.queries(n_new, n_q, 9);
    for (const bool codec_ops : {false, true}) {
      Params params;
      params.window = 1500;  // the first query, at 2960, reads from token 1461: 45 pages are free
      params.codec_ops = codec_ops;
      const Outputs full = run(kv.view(), q, n_new, n_q, params, pool);
      for (size_t drop : {1, 20, 45}) {
        const Outputs part = run(released(kv.view(), drop), q, n_new, n_q, params, pool);
        const std::string what = std::string(format::info(k).name) + "/" +
                                 std::string(format::info(v).name) + " codec_ops " +
                                 std::to_string(codec_ops) + " released " + std::to_string(drop);
        EXPECT_TRUE(same(part.decode, full.decode)) << what;
        EXPECT_TRUE(same(part.prefill, full.prefill)) << what;
        EXPECT_TRUE(same(part.reference, full.reference)) << what;
      }
    }
  }
}

TEST(ReleasedPages, WindowsReachingReleasedTokensAreRefused) {
  ThreadPool pool(1);
  Workspace ws;
  testing::KvShape shape;
  shape.n_tokens = 640;
  const testing::PagedKv kv(FormatId::f16, FormatId::f16, shape, testing::Data::gaussian, 3);
  const cache::LayerView view = released(kv.view(), 4);  // holds tokens 128..639
  const std::vector<float> q = kv.queries(2, 4, 1);
  std::vector<float> out(2 * 4 * 128);
  Params params;  // no window: every query reads token 0
  EXPECT_NE(error_of([&] {
              decode(view, q.data(), 4, out.data(), params, pool, ws);
            }).find("the view starts at token 128"),
            std::string::npos);
  params.window = 513;  // the query at 639 reads from 127
  EXPECT_NE(error_of([&] {
              decode(view, q.data(), 4, out.data(), params, pool, ws);
            }).find("reads from token 127"),
            std::string::npos);
  params.window = 512;
  EXPECT_EQ(error_of([&] { decode(view, q.data(), 4, out.data(), params, pool, ws); }), "");
  // Prefill of two tokens: the first query, at 638, reads from 127.
  EXPECT_NE(error_of([&] {
              prefill(view, q.data(), 2, 4, out.data(), params, pool, ws);
            }).find("query at position 638"),
            std::string::npos);
  EXPECT_NE(error_of([&] { reference(view, q.data(), 2, 4, out.data(), params); }).find("released"),
            std::string::npos);
}

// The real cache with a sliding layer keeps only the pages the window reads, and attention over
// its views gives exactly what it gives over a full-attention cache of the same data.
TEST(ReleasedPages, SlidingCacheMatchesFullCache) {
  ThreadPool pool(2);
  const int window = 200, n_q = 4, steps = 700;
  cache::CacheConfig c;
  c.n_layers = 1;
  c.n_kv_heads = 2;
  c.head_dim_k = c.head_dim_v = 128;
  c.page_tokens = 32;
  c.policy = format::KVPolicy(FormatId::q8, FormatId::q8);
  c.n_pages = 64;
  c.salt = "attention test";
  cache::Cache full(c);
  c.layer_window = {window};
  c.n_pages = 16;  // 700 tokens need 22 pages; the window needs at most ceil(200 / 32) + 1 = 8
  cache::Cache sliding(c);
  const cache::SeqId a = full.create(), b = sliding.create();
  Rng rng(11);
  Params params;
  params.window = window;
  Workspace ws;
  const size_t width = 2 * 128;
  for (int t = 0; t < steps; ++t) {
    std::vector<float> k(width), v(width), q(static_cast<size_t>(n_q) * 128);
    for (float& x : k) x = static_cast<float>(rng.normal());
    for (float& x : v) x = static_cast<float>(rng.normal());
    for (float& x : q) x = static_cast<float>(rng.normal());
    const int32_t id = t;
    for (cache::Cache* cache : {&full, &sliding}) {
      const cache::SeqId s = cache == &full ? a : b;
      cache->begin_step(s, {&id, 1});
      cache->append(s, 0, k.data(), v.data(), 1);
    }
    if (t % 50 == 49 || t == steps - 1) {
      std::vector<float> want(static_cast<size_t>(n_q) * 128), got(want.size());
      decode(full.view(a, 0), q.data(), n_q, want.data(), params, pool, ws);
      const cache::LayerView view = sliding.view(b, 0);
      decode(view, q.data(), n_q, got.data(), params, pool, ws);
      ASSERT_TRUE(same(got, want)) << "token " << t;
      EXPECT_LE(view.first_token(), std::max(0, t - window + 1));
    }
    full.commit_step(a);
    sliding.commit_step(b);
    EXPECT_LE(sliding.residency().active.pages, 8u) << "token " << t;
  }
  EXPECT_GT(sliding.view(b, 0).first_page, 0u);
  sliding.check_invariants();
}

}  // namespace
}  // namespace kvpack::attention
