// Sliding-window layers in the cache: page groups, pages released behind the window, the ring a
// chunked step recycles, prefix reuse, truncation, rollback and fork per group, and the cache's
// peak against the page arithmetic (PageLayout) the planner uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cache_test_util.h"

namespace kvpack::cache {
namespace {

using testing::error_of;
using testing::iota_tokens;
using testing::read_back;
using testing::rows_for;
using testing::small_config;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The layer's view holds what a query at position `from` reads (its window), with the rows
// appended (f32: exactly).
void expect_window(const Cache& cache, SeqId s, int layer, const std::vector<int32_t>& tokens,
                   int64_t from) {
  const CacheConfig& c = cache.config();
  const LayerView v = cache.view(s, layer);
  const int w = c.layer_window.empty() ? 0 : c.layer_window[layer];
  const int64_t need = w == 0 ? 0 : std::max<int64_t>(0, from - w + 1);
  ASSERT_LE(v.first_token(), need) << "layer " << layer << " at " << from;
  const testing::Rows got = read_back(v);
  const auto n = static_cast<size_t>(v.n_tokens());
  const testing::Rows want = rows_for(c, layer, tokens, 0, n);
  const size_t kw = static_cast<size_t>(c.n_kv_heads) * c.head_dim_k;
  const size_t vw = static_cast<size_t>(c.n_kv_heads) * c.head_dim_v;
  const auto t0 = static_cast<size_t>(v.first_token());
  ASSERT_EQ(std::memcmp(got.k.data() + t0 * kw, want.k.data() + t0 * kw, (n - t0) * kw * 4), 0)
      << "layer " << layer << " K";
  ASSERT_EQ(std::memcmp(got.v.data() + t0 * vw, want.v.data() + t0 * vw, (n - t0) * vw * 4), 0)
      << "layer " << layer << " V";
}

// One step over tokens [from, to) the way the forward pass runs it: chunk by chunk, every layer
// appends the chunk and then attends to it (here: checks its view holds the chunk's windows).
void chunked_step(Cache& cache, SeqId s, const std::vector<int32_t>& tokens, size_t from, size_t to,
                  int chunk, bool check = true) {
  cache.begin_step(s, std::span<const int32_t>(tokens).subspan(from, to - from), chunk);
  const size_t m = chunk > 0 ? static_cast<size_t>(chunk) : to - from;
  for (size_t a = from; a < to; a += m) {
    const size_t b = std::min(to, a + m);
    for (int l = 0; l < cache.config().n_layers; ++l) {
      const testing::Rows r = rows_for(cache.config(), l, tokens, a, b);
      cache.append(s, l, r.k.data(), r.v.data(), static_cast<int>(b - a));
      if (check) expect_window(cache, s, l, tokens, static_cast<int64_t>(a));
    }
  }
  cache.commit_step(s);
}

// 5 sliding layers to 1 full (Gemma 3's pattern) with a window of `window` tokens.
std::vector<int> gemma3_windows(int n_layers, int window) {
  std::vector<int> w(static_cast<size_t>(n_layers));
  for (int l = 0; l < n_layers; ++l) w[l] = l % 6 == 5 ? 0 : window;
  return w;
}

TEST(Windows, DecodeKeepsOnlyTheWindowsPages) {
  CacheConfig c = small_config(64, "k=f32,v=f32", 16, 0, {40, 0, 40, 40});
  Cache cache(c);
  const PageLayout& l = cache.layout();
  ASSERT_EQ(l.groups.size(), 4u);  // one full layer: groups of one
  const SeqId s = cache.create();
  const auto tokens = iota_tokens(400);
  for (size_t n = 0; n < tokens.size(); ++n) {
    chunked_step(cache, s, tokens, n, n + 1, 0, n % 37 == 0);
    const Residency r = cache.residency();
    for (size_t g = 0; g < l.groups.size(); ++g) {
      const auto held = static_cast<uint64_t>(ceil_div(static_cast<int64_t>(n + 1), 16)) -
                        r.groups[g].released.pages;
      ASSERT_EQ(held, l.held_pages(g, static_cast<int64_t>(n + 1))) << n;
      ASSERT_EQ(r.groups[g].max_sequence_pages, held);
    }
    ASSERT_LE(r.peak.pages, l.sequence_pages(static_cast<int64_t>(n + 1), 1)) << n;
  }
  // A sliding group holds ceil(40 / 16) + 1 = 4 pages at most; the full one every page.
  EXPECT_EQ(l.groups[1].max_held, 4u);
  const Residency r = cache.residency();
  EXPECT_EQ(r.active.pages, 25u + 3 * l.held_pages(1, 400));
  EXPECT_EQ(cache.view(s, 0).first_page, static_cast<size_t>(l.first_held(1, 400)));
  EXPECT_NE(r.to_table().find("sliding 40"), std::string::npos);
  EXPECT_NE(r.to_json().find("\"released\""), std::string::npos);
  cache.check_invariants();
}

// The planner's figure is what the cache takes: a cache of exactly sequence_pages() pages grows
// one sequence to n tokens along the worst order of steps, peaks at exactly that many pages, and
// one page fewer does not suffice.
TEST(Windows, PeakEqualsThePageArithmetic) {
  struct Case {
    int window, hp, page, chunk;
    int64_t n;
  };
  const Case cases[] = {{40, 0, 16, 8, 300},   {40, 0, 16, 64, 300},  {64, 0, 32, 32, 400},
                        {100, 7, 16, 24, 500}, {20, 50, 16, 16, 300}, {33, 0, 16, 1, 200}};
  for (const Case& k : cases) {
    SCOPED_TRACE(
        fmt::format("window {} hp {} page {} chunk {} n {}", k.window, k.hp, k.page, k.chunk, k.n));
    CacheConfig c = small_config(1, "k=f32,v=f32", k.page, k.hp, gemma3_windows(6, k.window));
    const PageLayout l = page_layout(c);
    const uint64_t need = l.sequence_pages(k.n, k.chunk);
    const size_t g = static_cast<size_t>(l.layer_group[0]);  // a sliding group
    int64_t worst = 0;                                       // where the long step should start
    for (int64_t n0 = 0; n0 <= k.n; ++n0) {
      if (l.step_pages(g, n0, k.n, k.chunk) > l.step_pages(g, worst, k.n, k.chunk)) worst = n0;
    }
    const auto tokens = iota_tokens(static_cast<size_t>(k.n));
    for (const uint64_t pages : {need, need - 1}) {
      c.n_pages = static_cast<uint32_t>(pages);
      Cache cache(c);
      const SeqId s = cache.create();
      const std::string err = error_of([&] {
        for (int64_t n = 0; n < worst; ++n) chunked_step(cache, s, tokens, n, n + 1, 0, false);
        chunked_step(cache, s, tokens, worst, tokens.size(), k.chunk, true);
      });
      if (pages == need) {
        ASSERT_EQ(err, "");
        EXPECT_EQ(cache.residency().peak.pages, need);
        cache.check_invariants();
      } else {
        EXPECT_EQ(err.rfind("kv cache full", 0), 0u) << err;
      }
    }
  }
}

// Other orders never take more: one prefill, decode steps, prefills of random lengths.
TEST(Windows, EveryOrderStaysWithinThePeak) {
  CacheConfig c = small_config(1, "k=f32,v=f32", 16, 0, gemma3_windows(12, 50));
  const int64_t n = 600;
  c.n_pages = sequence_pages(c, n, 32);
  const auto tokens = iota_tokens(static_cast<size_t>(n));
  Rng rng(3);
  for (int order = 0; order < 4; ++order) {
    Cache cache(c);
    const SeqId s = cache.create();
    for (size_t at = 0; at < tokens.size();) {
      const size_t len = order == 0 ? tokens.size() : order == 1 ? 1 : 1 + rng.below(200);
      const size_t to = std::min(tokens.size(), at + len);
      chunked_step(cache, s, tokens, at, to, 32, order != 1 || at % 50 == 0);
      at = to;
    }
    EXPECT_LE(cache.residency().peak.pages, c.n_pages) << order;
    cache.check_invariants();
  }
}

TEST(Windows, ChunkedStepRecyclesItsOwnPages) {
  CacheConfig c = small_config(200, "k=f32,v=f32", 16, 0, {30, 30, 0});
  Cache cache(c);
  const auto tokens = iota_tokens(500);
  const SeqId s = cache.create();
  chunked_step(cache, s, tokens, 0, 100, 0);
  cache.begin_step(s, std::span<const int32_t>(tokens).subspan(100, 400), 20);
  const PageLayout& l = cache.layout();
  const size_t sliding = static_cast<size_t>(l.layer_group[0]);
  // The step takes the ring's pages up front, not one per token.
  EXPECT_EQ(cache.residency().groups[sliding].active.pages,
            l.held_pages(sliding, 100) + l.ring_pages(sliding, 20));
  for (size_t a = 100; a < 400; a += 20) {
    for (int layer = 0; layer < 3; ++layer) {
      const testing::Rows r = rows_for(c, layer, tokens, a, a + 20);
      cache.append(s, layer, r.k.data(), r.v.data(), 20);
      expect_window(cache, s, layer, tokens, static_cast<int64_t>(a));
    }
  }
  EXPECT_GT(cache.view(s, 0).first_page, 7u);  // past the step's first page: recycled
  cache.check_invariants();
  cache.compact();
  cache.rollback_step(s);
  cache.check_invariants();
  EXPECT_EQ(cache.n_tokens(s), 100);
  for (int layer = 0; layer < 3; ++layer) expect_window(cache, s, layer, tokens, 100);
  chunked_step(cache, s, tokens, 100, 500, 20);
  for (int layer = 0; layer < 3; ++layer) expect_window(cache, s, layer, tokens, 500);
}

TEST(Windows, RollbackOfAChunkedStepRestoresEveryTable) {
  CacheConfig c = small_config(200, "k=f32,v=f32", 16, 0, {30, 30, 0});
  Cache cache(c);
  const auto tokens = iota_tokens(500);
  const SeqId s = cache.create();
  chunked_step(cache, s, tokens, 0, 150, 16);
  const auto state = [&] {
    Residency r = cache.residency();
    r.counters = {};
    r.touched_bytes = 0;
    r.peak = {};
    std::string out = r.to_json(-1);
    for (int g = 0; g < 3; ++g) out += fmt::format("|{}", fmt::join(cache.page_table(s, g), " "));
    for (uint32_t p = 0; p < cache.n_pages(); ++p) {
      out +=
          fmt::format(",{}{}", cache.page_info(p).refcount, cache.page_info(p).hashed ? "h" : "");
    }
    return out;
  };
  const std::string before = state();
  cache.begin_step(s, std::span<const int32_t>(tokens).subspan(150, 300), 16);
  for (size_t a = 150; a < 420; a += 16) {
    for (int layer = 0; layer < (a + 16 < 420 ? 3 : 1); ++layer) {
      const testing::Rows r = rows_for(c, layer, tokens, a, a + 16);
      cache.append(s, layer, r.k.data(), r.v.data(), 16);
    }
  }
  cache.rollback_step(s);
  EXPECT_EQ(state(), before);
  cache.check_invariants();
}

TEST(Windows, AppendsBreakingTheChunkPromiseAreRefused) {
  CacheConfig c = small_config(200, "k=f32,v=f32", 16, 0, {30, 30, 0, 0});
  Cache cache(c);
  ASSERT_EQ(cache.layout().groups[1].layers, (std::vector<int>{0, 1}));
  const auto tokens = iota_tokens(300);
  const SeqId s = cache.create();
  cache.begin_step(s, tokens, 16);
  testing::Rows r = rows_for(c, 0, tokens, 0, 17);
  EXPECT_NE(error_of([&] {
              cache.append(s, 0, r.k.data(), r.v.data(), 17);
            }).find("longer than its step's chunk of 16"),
            std::string::npos);
  // Layer 0 runs ahead while layer 1, in its page group, has attended nothing: the ring runs
  // out.
  std::string err;
  size_t a = 0;
  for (; a < 300 && err.empty(); a += 16) {
    const size_t b = std::min<size_t>(300, a + 16);
    r = rows_for(c, 0, tokens, a, b);
    err = error_of([&] { cache.append(s, 0, r.k.data(), r.v.data(), static_cast<int>(b - a)); });
  }
  EXPECT_NE(err.find("runs ahead of its step's chunk"), std::string::npos) << err;
  cache.check_invariants();
  // Nothing changed: layer 1 catches up and layer 0 goes on.
  EXPECT_EQ(cache.view(s, 0).n_tokens(), static_cast<int64_t>(a - 16));
  cache.rollback_step(s);
  chunked_step(cache, s, tokens, 0, 300, 16);
  cache.check_invariants();
}

TEST(Windows, AttachingAPrefixNeedsOnlyTheWindowsPages) {
  CacheConfig c = small_config(200, "k=f32,v=f32", 16, 0, {40, 0});
  Cache cache(c);
  const auto tokens = iota_tokens(500);
  const SeqId a = cache.create();
  // One long chunked step: its sliding pages behind the window were recycled, never cached.
  chunked_step(cache, a, tokens, 0, 500, 32);
  const PageLayout& l = cache.layout();
  const size_t sliding = static_cast<size_t>(l.layer_group[0]);
  const SeqId b = cache.create();
  EXPECT_EQ(cache.attach_prefix(b, tokens), 496);
  const auto table = cache.page_table(b, static_cast<int>(sliding));
  EXPECT_EQ(std::count(table.begin(), table.end(), kNoPage), l.window_start(sliding, 496));
  for (int layer = 0; layer < 2; ++layer) expect_window(cache, b, layer, tokens, 496);
  // b goes on from there and matches what a has for the same tokens.
  chunked_step(cache, b, tokens, 496, 500, 0);
  for (int layer = 0; layer < 2; ++layer) expect_window(cache, b, layer, tokens, 500);
  // A prefix ending where the sliding pages were recycled cannot be attached.
  const SeqId d = cache.create();
  EXPECT_EQ(cache.attach_prefix(d, std::span<const int32_t>(tokens).first(300)), 0);
  cache.check_invariants();
  // Decode steps release hashed pages into the cache: a prefix ending there attaches.
  const SeqId e = cache.create();
  const auto other = iota_tokens(300, 5000);
  for (size_t n = 0; n < other.size(); ++n) chunked_step(cache, e, other, n, n + 1, 0, false);
  cache.free(e);
  const SeqId f = cache.create();
  EXPECT_EQ(cache.attach_prefix(f, std::span<const int32_t>(other).first(200)), 192);
  for (int layer = 0; layer < 2; ++layer) expect_window(cache, f, layer, other, 192);
  cache.check_invariants();
}

TEST(Windows, TruncateTakesBackCachedPagesOrRefuses) {
  CacheConfig c = small_config(48, "k=f32,v=f32", 16, 0, {40, 0});
  Cache cache(c);
  const auto tokens = iota_tokens(300);
  const SeqId s = cache.create();
  for (size_t n = 0; n < tokens.size(); ++n) chunked_step(cache, s, tokens, n, n + 1, 0, false);
  // 30 tokens back: the window of token 270 starts in a page the sequence released, still cached.
  cache.truncate(s, 30);
  for (int layer = 0; layer < 2; ++layer) expect_window(cache, s, layer, tokens, 270);
  cache.check_invariants();
  chunked_step(cache, s, tokens, 270, 300, 8);
  // Fill the arena with another sequence so the released pages are evicted.
  const SeqId t = cache.create();
  const auto other = iota_tokens(250, 9000);
  chunked_step(cache, t, other, 0, 250, 16, false);
  const auto full = cache.page_table(s, 0), sliding = cache.page_table(s, 1);
  const std::string err = error_of([&] { cache.truncate(s, 200); });
  EXPECT_NE(err.find("no longer cached"), std::string::npos) << err;
  EXPECT_EQ(cache.page_table(s, 0), full);
  EXPECT_EQ(cache.page_table(s, 1), sliding);
  EXPECT_EQ(cache.n_tokens(s), 300);
  cache.truncate(s, 300);  // to nothing: always possible
  EXPECT_EQ(cache.n_tokens(s), 0);
  cache.check_invariants();
}

TEST(Windows, ForkAndCompactKeepEveryGroup) {
  CacheConfig c = small_config(120, "k=f32,v=f32", 16, 0, {40, 40, 0, 0});
  Cache cache(c);
  ASSERT_EQ(cache.layout().groups.size(), 2u);  // groups of two layers
  const auto tokens = iota_tokens(400);
  auto other = tokens;
  for (size_t i = 200; i < other.size(); ++i) other[i] += 7777;
  const SeqId z = cache.create();  // takes page 0, freed below: a hole to compact
  const int32_t lone = 99999;
  cache.add_tokens(z, {&lone, 1});
  const SeqId a = cache.create();
  chunked_step(cache, a, tokens, 0, 200, 16);
  const SeqId b = cache.fork(a);
  chunked_step(cache, a, tokens, 200, 400, 16);
  for (size_t n = 200; n < 300; ++n) chunked_step(cache, b, other, n, n + 1, 0, false);
  cache.free(z);
  EXPECT_GT(cache.compact(), 0u);
  cache.shrink();
  cache.check_invariants();
  for (int layer = 0; layer < 4; ++layer) {
    expect_window(cache, a, layer, tokens, 400);
    expect_window(cache, b, layer, std::vector<int32_t>(other.begin(), other.begin() + 300), 300);
  }
}

}  // namespace
}  // namespace kvpack::cache
