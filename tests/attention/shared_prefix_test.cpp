// Shared-prefix decode: a decode_batch whose sequences share leading pages (same page ids, as
// refcounted prefix pages of the paged cache are) against decoding each sequence on its own, for
// several K/V pairs and sharing patterns; and the pages such a batch reads (each shared page
// once per step).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "kvpack/attention.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

constexpr int kPoolPages = 96;
constexpr int kTail = 31;  // the pool's tail; each sequence uses the first tail_tokens of it

// A sequence of the batch: indices into the pool's page ids, and how many tail tokens it holds.
struct Seq {
  std::vector<int> pages;
  int tail = 0;
};
struct Pattern {
  const char* name;
  std::vector<Seq> seqs;
};

std::vector<int> range(int b, int e) {
  std::vector<int> r(static_cast<size_t>(e - b));
  std::iota(r.begin(), r.end(), b);
  return r;
}
std::vector<int> cat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<Pattern> patterns() {
  return {
      // A 40-page prefix (long enough to be split among threads), suffixes of 0-5 pages.
      {"all share",
       {{cat(range(0, 40), range(40, 43)), 7},
        {cat(range(0, 40), range(43, 48)), 30},
        {range(0, 40), 1},
        {cat(range(0, 40), {48}), 16}}},
      {"two groups",
       {{cat(range(0, 12), range(60, 62)), 3},
        {cat(range(30, 50), {62}), 9},
        {cat(range(0, 12), {63}), 12},
        {cat(range(30, 50), range(64, 67)), 0},
        {range(0, 12), 20},
        {range(70, 72), 5}}},
      {"none share",
       {{range(0, 20), 4}, {range(20, 21), 31}, {range(21, 60), 2}, {range(60, 61), 0}}},
      // Sequences whose common tokens end inside page 8: each holds its own copy of that page
      // (copy on write), or holds those tokens in its tail; one has no pages at all.
      {"prefix ends mid-page",
       {{range(0, 9), 20},
        {cat(range(0, 8), {50}), 5},
        {range(0, 8), 17},
        {cat(range(0, 8), {51, 52}), 11},
        {{}, 6}}},
      // More sequences than one shared item stacks (32 x group 4 = 128 rows): two chunks.
      {"40 share",
       [] {
         std::vector<Seq> s;
         for (int i = 0; i < 40; ++i) s.push_back({cat(range(0, 20), {20 + i % 50}), 1 + i % 30});
         return s;
       }()},
  };
}

struct Batch {
  std::vector<std::vector<uint32_t>> ids;
  std::vector<cache::LayerView> views;
  std::vector<float> q;  // [n_seq][n_q][dk]
};

Batch make_batch(const PagedKv& pool, const Pattern& p, int n_q) {
  Batch b;
  for (const Seq& s : p.seqs) {
    std::vector<uint32_t> ids;
    for (int i : s.pages) ids.push_back(pool.view().page_ids[static_cast<size_t>(i)]);
    b.ids.push_back(std::move(ids));
  }
  for (size_t i = 0; i < p.seqs.size(); ++i) {
    cache::LayerView v = pool.view();
    v.page_ids = b.ids[i];
    v.tail_tokens = p.seqs[i].tail;
    b.views.push_back(v);
    const auto qi = pool.queries(1, n_q, 100 + i);
    b.q.insert(b.q.end(), qi.begin(), qi.end());
  }
  return b;
}

// Largest |value| the V codec decodes from the pool, tail included.
double max_abs_value(const cache::LayerView& v) {
  std::vector<float> x(static_cast<size_t>(v.page_tokens) * v.head_dim_v);
  double m = 0;
  for (size_t p = 0; p < v.page_ids.size(); ++p) {
    for (int h = 0; h < v.n_kv_heads; ++h) {
      v.v_codec->decode(h, v.v_block(p, h), v.page_tokens, x.data());
      for (float e : x) m = std::max(m, std::fabs(static_cast<double>(e)));
    }
  }
  for (int h = 0; h < v.n_kv_heads; ++h) {
    for (int t = 0; t < v.tail_tokens; ++t) {
      const float* row = v.v_tail_row(h, t);
      for (int j = 0; j < v.head_dim_v; ++j) m = std::max(m, std::fabs(double{row[j]}));
    }
  }
  return m;
}

// Bound on |shared - own| for one output element, both exact-weight paths of the same logits
// (same prepared query rows and K kernel, so per-token logits are identical) that differ only
// in where chunks, splits and merges fall. Per path: each token's weight is one polynomial
// exp2 (relative error kExpRelError) times rescale factors that multiply acc and l alike (they
// cancel in acc / l up to one f32 rounding per rescale or merge, at most chunks + splits + 2 of
// them); a relative weight error e moves a convex combination of values by at most 2 e max|v|;
// the f32 sums over n tokens add at most 2 n u max|v| (acc and l). Two paths: twice that.
double f32_tolerance(int64_t n_tokens, int page_tokens, double max_v) {
  const double u = std::ldexp(1.0, -24);
  const double roundings = static_cast<double>(n_tokens) / page_tokens + 8;
  const double weight = kExpRelError + 2 * roundings * u;
  return 2 * (2 * weight + 2 * static_cast<double>(n_tokens) * u) * max_v;
}

struct PairCase {
  FormatId k, v;
};

class SharedPrefix : public ::testing::TestWithParam<PairCase> {};

TEST_P(SharedPrefix, MatchesPerSequenceDecode) {
  const PairCase c = GetParam();
  const KvShape shape{2, 128, 128, 32, kPoolPages * 32 + kTail, kTail};
  const PagedKv pool(c.k, c.v, shape, Data::gaussian, 7);
  const int n_q = 8;  // GQA group 4
  const size_t per_seq = static_cast<size_t>(n_q) * shape.head_dim_v;
  const double max_v = max_abs_value(pool.view());
  ThreadPool threads(3);
  for (const Pattern& pat : patterns()) {
    const Batch b = make_batch(pool, pat, n_q);
    for (int window : {0, 300}) {
      Params p;
      p.window = window;
      p.exact_value_weights = true;
      Workspace ws;
      std::vector<float> got(b.views.size() * per_seq, -1.0f);
      decode_batch(b.views, b.q.data(), n_q, got.data(), p, threads, ws);
      for (size_t i = 0; i < b.views.size(); ++i) {
        const float* qi = b.q.data() + i * per_seq;
        std::vector<float> want(per_seq);
        Workspace own;
        decode(b.views[i], qi, n_q, want.data(), p, threads, own);
        const double tol = f32_tolerance(b.views[i].n_tokens(), shape.page_tokens, max_v);
        double worst = 0, scale = 0;
        for (size_t j = 0; j < per_seq; ++j) {
          worst = std::max(worst, std::fabs(double{got[i * per_seq + j]} - want[j]));
          scale = std::max(scale, std::fabs(double{want[j]}));
        }
        EXPECT_LE(worst, tol) << pat.name << " window " << window << " sequence " << i;
        // The bound must be able to fail: outputs are far larger than it.
        EXPECT_GT(scale, 10 * tol) << pat.name << " sequence " << i;
      }
    }
    // Integer value weights round per chunk of pages, and chunks fall elsewhere when pages are
    // shared: each path is held to the double reference within its derived bound.
    Params p;
    Workspace ws;
    std::vector<float> got(b.views.size() * per_seq);
    decode_batch(b.views, b.q.data(), n_q, got.data(), p, threads, ws);
    for (size_t i = 0; i < b.views.size(); ++i) {
      const float* qi = b.q.data() + i * per_seq;
      std::vector<float> want(per_seq);
      reference(b.views[i], qi, 1, n_q, want.data(), p);
      const auto tol = testing::tolerance(b.views[i], qi, 1, n_q, p, pool.max_key_norm());
      const std::vector<float> mine(got.begin() + static_cast<ptrdiff_t>(i * per_seq),
                                    got.begin() + static_cast<ptrdiff_t>((i + 1) * per_seq));
      EXPECT_LT(testing::excess(mine, want, tol).worst, 1.0) << pat.name << " sequence " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Pairs, SharedPrefix,
                         ::testing::Values(PairCase{FormatId::f16, FormatId::f16},
                                           PairCase{FormatId::q8, FormatId::q8},
                                           PairCase{FormatId::q4, FormatId::q8},
                                           PairCase{FormatId::turbo4, FormatId::turbo4}),
                         [](const auto& param_info) {
                           return fmt::format("{}_{}", format::info(param_info.param.k).name,
                                              format::info(param_info.param.v).name);
                         });

// Sliding-window layers: views whose first 10 pages were released (the same for every sequence
// of the run), each query's window starting inside the shared pages at its own place.
TEST(SharedPrefixWindows, ReleasedPagesAndWindows) {
  const KvShape shape{2, 128, 128, 32, kPoolPages * 32 + kTail, kTail};
  const int n_q = 8;
  const size_t per_seq = static_cast<size_t>(n_q) * shape.head_dim_v;
  ThreadPool threads(3);
  for (const FormatId f : {FormatId::f16, FormatId::q8}) {
    const PagedKv pool(f, f, shape, Data::gaussian, 11);
    const double max_v = max_abs_value(pool.view());
    const Pattern pat{"released",
                      {{cat(range(0, 20), range(20, 23)), 9},
                       {range(0, 20), 1},
                       {cat(range(0, 20), {30}), 25},
                       {cat(range(0, 20), range(31, 34)), 0}}};
    Batch b = make_batch(pool, pat, n_q);
    for (cache::LayerView& v : b.views) v.first_page = 10;  // pages 0..9 were released
    Params p;
    p.window = 600;  // the shortest sequence's query (position 960) reads from token 361
    p.exact_value_weights = true;
    Workspace ws;
    std::vector<float> got(b.views.size() * per_seq);
    DecodeStats stats;
    decode_batch(b.views, b.q.data(), n_q, got.data(), p, threads, ws, &stats);
    std::set<uint32_t> unique;
    for (const auto& ids : b.ids) unique.insert(ids.begin(), ids.end());
    // Chunks no query's window reaches are skipped, so at most each distinct page once.
    EXPECT_LE(stats.page_blocks, unique.size() * shape.n_kv_heads);
    EXPECT_GT(stats.page_blocks, 0u);
    for (size_t i = 0; i < b.views.size(); ++i) {
      std::vector<float> want(per_seq);
      Workspace own;
      decode(b.views[i], b.q.data() + i * per_seq, n_q, want.data(), p, threads, own);
      const double tol = f32_tolerance(b.views[i].n_tokens(), shape.page_tokens, max_v);
      double worst = 0;
      for (size_t j = 0; j < per_seq; ++j) {
        worst = std::max(worst, std::fabs(double{got[i * per_seq + j]} - want[j]));
      }
      EXPECT_LE(worst, tol) << format::info(f).name << " sequence " << i;
    }
  }
}

// Each distinct page of a step is read once per KV head when prefixes are shared, and once per
// holder when not.
TEST(SharedPrefixReads, EachSharedPageOncePerStep) {
  const KvShape shape{2, 128, 128, 32, kPoolPages * 32 + kTail, kTail};
  const PagedKv pool(FormatId::q8, FormatId::q8, shape, Data::gaussian, 3);
  const int n_q = 8;
  ThreadPool threads(2);
  const size_t block_bytes = pool.view().k_codec->head_bytes() + pool.view().v_codec->head_bytes();
  for (const Pattern& pat : patterns()) {
    if (std::string(pat.name) == "40 share") continue;  // more rows than one item stacks
    const Batch b = make_batch(pool, pat, n_q);
    std::set<uint32_t> unique;
    uint64_t held = 0;
    for (const auto& ids : b.ids) {
      unique.insert(ids.begin(), ids.end());
      held += ids.size();
    }
    std::vector<float> out(b.q.size());
    Workspace ws;
    for (bool share : {true, false}) {
      Params p;
      p.share_prefixes = share;
      DecodeStats stats;
      decode_batch(b.views, b.q.data(), n_q, out.data(), p, threads, ws, &stats);
      const uint64_t want = (share ? unique.size() : held) * shape.n_kv_heads;
      EXPECT_EQ(stats.page_blocks, want) << pat.name << (share ? " shared" : " unshared");
      EXPECT_EQ(stats.bytes, want * block_bytes) << pat.name;
    }
  }
}

// A run with more sequences than one item stacks is cut into chunks, each reading the run once.
TEST(SharedPrefixReads, ChunksOfARunEachReadItOnce) {
  const KvShape shape{2, 128, 128, 32, kPoolPages * 32 + kTail, kTail};
  const PagedKv pool(FormatId::f16, FormatId::f16, shape, Data::gaussian, 5);
  const int n_q = 8;  // group 4: 32 sequences per 128-row item
  ThreadPool threads(2);
  const Pattern pat = patterns().back();
  ASSERT_EQ(pat.seqs.size(), 40u);
  const Batch b = make_batch(pool, pat, n_q);
  std::set<uint32_t> own;
  for (const auto& ids : b.ids) own.insert(ids.begin() + 20, ids.end());
  std::vector<float> out(b.q.size());
  Workspace ws;
  DecodeStats stats;
  decode_batch(b.views, b.q.data(), n_q, out.data(), Params{}, threads, ws, &stats);
  // Two chunks (32 + 8 sequences) read the 20 shared pages; each sequence reads its own page.
  EXPECT_EQ(stats.page_blocks, (2 * 20 + 40) * static_cast<uint64_t>(shape.n_kv_heads));
  EXPECT_EQ(own.size(), 40u);
}

}  // namespace
}  // namespace kvpack::attention
