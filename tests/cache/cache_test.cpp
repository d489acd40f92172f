// The cache's operations one at a time: staging and encoding, the high-precision window, when
// pages are taken, errors that change nothing, truncate, fork, free, compaction and shrink.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>

#include "cache_test_util.h"

namespace kvpack::cache {
namespace {

using testing::error_of;
using testing::extend;
using testing::iota_tokens;
using testing::read_back;
using testing::rows_for;
using testing::small_config;

// Every layer of seq reads back exactly the rows of tokens (f32 / exactly representable data).
void expect_reads_back(const Cache& cache, SeqId seq, const std::vector<int32_t>& tokens) {
  for (int l = 0; l < cache.config().n_layers; ++l) {
    const LayerView view = cache.view(seq, l);
    ASSERT_EQ(view.n_tokens(), static_cast<int64_t>(tokens.size()));
    const auto got = read_back(view);
    const auto want = rows_for(cache.config(), l, tokens, 0, tokens.size());
    ASSERT_EQ(got.k, want.k) << "layer " << l;
    ASSERT_EQ(got.v, want.v) << "layer " << l;
  }
}

TEST(Cache, AppendsReadBackThroughPagesAndTail) {
  for (const char* policy : {"k=f32,v=f32", "k=f16,v=bf16", "k=bf16,v=f32;1:k=f16,v=f16"}) {
    Cache cache(small_config(16, policy));
    const SeqId s = cache.create();
    const auto tokens = iota_tokens(50);
    extend(cache, s, tokens, 0, 7);  // uneven chunks cross page boundaries
    extend(cache, s, tokens, 7, 40);
    extend(cache, s, tokens, 40, 50);
    const LayerView v = cache.view(s, 1);
    EXPECT_EQ(v.page_ids.size(), 3u);
    EXPECT_EQ(v.tail_tokens, 2);
    EXPECT_EQ(v.k_page_stride, cache.k_codec(1).slice_bytes());
    expect_reads_back(cache, s, tokens);
    cache.check_invariants();
  }
}

TEST(Cache, F16PagesRoundWithinHalfAnUlp) {
  Cache cache(small_config(8, "k=f16,v=f16"));
  const SeqId s = cache.create();
  const int n = 40, H = 2, dk = 8, dv = 16;
  std::vector<float> k(n * H * dk), v(n * H * dv);
  Rng rng(5);
  for (auto& x : k) x = static_cast<float>(rng.normal() * 3);
  for (auto& x : v) x = static_cast<float>(rng.normal() * 3);
  cache.add_tokens(s, iota_tokens(n));
  for (int l = 0; l < 2; ++l) cache.append(s, l, k.data(), v.data(), n);
  const auto got = read_back(cache.view(s, 0));
  for (size_t i = 0; i < k.size(); ++i) {
    const bool in_tail = i >= static_cast<size_t>(32 * H * dk);
    const double bound = in_tail ? 0 : std::fabs(k[i]) * 0x1p-11 + 0x1p-25;
    ASSERT_LE(std::fabs(got.k[i] - k[i]), bound) << i;
  }
}

TEST(Cache, HighPrecisionWindowKeepsTheNewestTokensUnencoded) {
  Cache cache(small_config(16, "k=f32,v=f32", 16, 20));
  const SeqId s = cache.create();
  const auto tokens = iota_tokens(120);
  for (size_t n = 0; n < tokens.size(); n += 3) {
    extend(cache, s, tokens, n, std::min(n + 3, tokens.size()));
    const LayerView v = cache.view(s, 0);
    const int64_t len = static_cast<int64_t>(std::min(n + 3, tokens.size()));
    // A page is encoded once all its tokens are older than the newest 20.
    EXPECT_EQ(v.encoded_tokens(), std::max<int64_t>(0, (len - 20) / 16) * 16) << len;
    EXPECT_GE(v.tail_tokens, std::min<int64_t>(len, 20));
  }
  expect_reads_back(cache, s, tokens);
  cache.check_invariants();
}

TEST(Cache, APageIsTakenWhenItsFirstTokenArrives) {
  Cache cache(small_config(4));
  const SeqId s = cache.create();
  const auto tokens = iota_tokens(17);
  cache.add_tokens(s, std::span<const int32_t>(tokens).first(1));
  EXPECT_EQ(cache.page_table(s).size(), 1u);
  Residency r = cache.residency();
  EXPECT_EQ(r.active.pages, 1u);
  EXPECT_EQ(r.tail_unused_slots, 15u);
  cache.add_tokens(s, std::span<const int32_t>(tokens).subspan(1, 16));
  EXPECT_EQ(cache.page_table(s).size(), 2u);
  EXPECT_EQ(cache.residency().tail_unused_slots, 15u);
  // The layers append afterwards, encoding page 0 into the page already held: nothing to fail.
  for (int l = 0; l < 2; ++l) {
    const auto rows = rows_for(cache.config(), l, tokens, 0, 17);
    cache.append(s, l, rows.k.data(), rows.v.data(), 17);
  }
  EXPECT_EQ(cache.view(s, 1).page_ids.size(), 1u);
}

TEST(Cache, FullCacheFailsWithCountsAndChangesNothing) {
  Cache cache(small_config(3));
  const SeqId a = cache.create();
  const auto tokens = iota_tokens(40);
  extend(cache, a, tokens, 0, 40);  // 3 pages, the last half full
  const SeqId b = cache.create();
  const std::string before = cache.residency().to_json();
  const std::string err = error_of([&] { cache.add_tokens(b, tokens); });
  EXPECT_EQ(err, "kv cache full: need 3 pages, 0 free, 0 evictable");
  EXPECT_EQ(cache.residency().to_json(), before);
  EXPECT_EQ(cache.n_tokens(b), 0);
  // Filling a's last page needs no new page; one more token past it does.
  EXPECT_EQ(error_of([&] { extend(cache, a, iota_tokens(48), 40, 48); }), "");
  EXPECT_EQ(error_of([&] { cache.add_tokens(a, iota_tokens(1)); }),
            "kv cache full: need 1 page, 0 free, 0 evictable");
  expect_reads_back(cache, a, iota_tokens(48));
  cache.check_invariants();
}

TEST(Cache, RejectsNonFiniteValuesBeforeChangingAnything) {
  Cache cache(small_config(4));
  const SeqId s = cache.create();
  const auto tokens = iota_tokens(20);
  extend(cache, s, tokens, 0, 10);
  cache.add_tokens(s, std::span<const int32_t>(tokens).subspan(10, 10));
  auto rows = rows_for(cache.config(), 0, tokens, 10, 20);
  rows.v[5 * 32 + 16 + 3] = NAN;  // token 5, head 1, dim 3
  const std::string err = error_of([&] { cache.append(s, 0, rows.k.data(), rows.v.data(), 10); });
  EXPECT_EQ(err,
            "kv cache: non-finite V value nan in append to sequence 0, layer 0 (token 5, head 1, "
            "dim 3)");
  rows.v[5 * 32 + 16 + 3] = 0;
  rows.k[0] = -INFINITY;
  EXPECT_NE(error_of([&] { cache.append(s, 0, rows.k.data(), rows.v.data(), 10); }), "");
  EXPECT_EQ(cache.view(s, 0).n_tokens(), 10);
  // The sequence carries on from where it was.
  for (int l = 0; l < 2; ++l) {
    const auto r = rows_for(cache.config(), l, tokens, 10, 20);
    cache.append(s, l, r.k.data(), r.v.data(), 10);
  }
  expect_reads_back(cache, s, tokens);
}

TEST(Cache, MisuseIsAnErrorNamingTheProblem) {
  Cache cache(small_config(4));
  const SeqId s = cache.create();
  const auto tokens = iota_tokens(4);
  const auto rows = rows_for(cache.config(), 0, tokens, 0, 4);
  EXPECT_NE(error_of([&] {
              cache.append(s, 0, rows.k.data(), rows.v.data(), 4);
            }).find("add_tokens first"),
            std::string::npos);
  cache.add_tokens(s, tokens);
  EXPECT_NE(error_of([&] {
              cache.append(s, 2, rows.k.data(), rows.v.data(), 4);
            }).find("layer 2 is outside 0..1"),
            std::string::npos);
  cache.append(s, 0, rows.k.data(), rows.v.data(), 4);
  EXPECT_NE(error_of([&] {
              cache.append(s, 0, rows.k.data(), rows.v.data(), 1);
            }).find("the layer has 4 of the 4 tokens added"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cache.fork(s); }).find("middle of a step"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.view(99, 0); }).find("unknown sequence id 99"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.truncate(s, 5); }).find("cannot drop 5 tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cache.attach_prefix(s, tokens); }).find("needs an empty sequence"),
            std::string::npos);
}

// The cache's state a rolled-back step must restore: residency without its counters and the
// touched and peak high-water marks, and every page's holders and hash.
std::string state_of(const Cache& cache) {
  Residency r = cache.residency();
  r.counters = {};
  r.touched_bytes = 0;
  r.peak = {};
  std::string s = r.to_json(-1);
  for (uint32_t p = 0; p < cache.n_pages(); ++p) {
    const PageInfo info = cache.page_info(p);
    s += fmt::format(" {}{}", info.refcount, info.hashed ? "h" : "");
  }
  return s;
}

// A step that fails partway, after a fork (so it un-shares a page and the staging) and with
// more tokens than the staging holds (so its rows wrap over the old tail): rolled back, both
// sequences are exactly as before; committed, its complete pages enter the prefix index only
// then.
TEST(Cache, RolledBackStepRestoresTheSequenceExactly) {
  Cache cache(small_config(12));
  const SeqId a = cache.create();
  const auto tokens = iota_tokens(40);
  extend(cache, a, tokens, 0, 40);  // pages 0, 1 full, page 2 holds 8 staged tokens
  const SeqId b = cache.fork(a);
  const std::string before = state_of(cache);
  const auto table = cache.page_table(b);

  const auto more = iota_tokens(70);
  const std::span<const int32_t> step = std::span(more).subspan(40, 30);
  cache.begin_step(b, step);
  EXPECT_NE(cache.page_table(b)[2], table[2]);  // b's filling page is its own now
  const auto r0 = rows_for(cache.config(), 0, more, 40, 70);
  cache.append(b, 0, r0.k.data(), r0.v.data(), 30);  // layer 0 encodes page 2 and stages 6 rows
  auto r1 = rows_for(cache.config(), 1, more, 40, 70);
  r1.k[3] = NAN;  // layer 1 fails
  EXPECT_NE(error_of([&] { cache.append(b, 1, r1.k.data(), r1.v.data(), 30); }), "");
  cache.check_invariants();  // the open step's kept page and staging are counted as holders
  EXPECT_NE(error_of([&] { cache.add_tokens(b, step); }).find("inside a step"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.truncate(b, 1); }).find("middle of a step"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.fork(b); }).find("middle of a step"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.begin_step(b, step); }).find("middle of a step"),
            std::string::npos);
  cache.rollback_step(b);
  EXPECT_EQ(state_of(cache), before);
  EXPECT_EQ(cache.page_table(b), table);
  EXPECT_EQ(cache.token_ids(b), tokens);
  expect_reads_back(cache, b, tokens);
  expect_reads_back(cache, a, tokens);
  EXPECT_NE(error_of([&] { cache.rollback_step(b); }).find("without a step"), std::string::npos);
  EXPECT_NE(error_of([&] { cache.commit_step(b); }).find("without a step"), std::string::npos);
  cache.check_invariants();

  // Without a fork, with the staging's rows wrapping: the same.
  cache.free(a);
  const std::string alone = state_of(cache);
  cache.begin_step(b, step);
  for (int l = 0; l < 2; ++l) {
    const auto r = rows_for(cache.config(), l, more, 40, 70);
    cache.append(b, l, r.k.data(), r.v.data(), 30);
  }
  cache.rollback_step(b);
  EXPECT_EQ(state_of(cache), alone);
  expect_reads_back(cache, b, tokens);

  // Committed, the step is as add_tokens and appends would have left it.
  cache.begin_step(b, step);
  for (int l = 0; l < 2; ++l) {
    const auto r = rows_for(cache.config(), l, more, 40, 70);
    cache.append(b, l, r.k.data(), r.v.data(), 30);
  }
  const uint32_t completed = cache.page_table(b)[2];
  EXPECT_FALSE(cache.page_info(completed).hashed);  // not before commit_step
  cache.commit_step(b);
  EXPECT_TRUE(cache.page_info(completed).hashed);
  expect_reads_back(cache, b, more);
  cache.check_invariants();
}

TEST(Cache, AFullCacheFailsBeginStepAndChangesNothing) {
  Cache cache(small_config(3));
  const SeqId a = cache.create();
  extend(cache, a, iota_tokens(40), 0, 40);
  const std::string before = cache.residency().to_json();
  EXPECT_EQ(error_of([&] { cache.begin_step(a, iota_tokens(20)); }),
            "kv cache full: need 1 page, 0 free, 0 evictable");
  EXPECT_EQ(cache.residency().to_json(), before);
  cache.begin_step(a, iota_tokens(8));  // no step is left open by the failure
  cache.rollback_step(a);
  expect_reads_back(cache, a, iota_tokens(40));
}

TEST(Cache, ConfigErrorsNameTheField) {
  CacheConfig c = small_config(4);
  c.page_tokens = 8;
  EXPECT_EQ(error_of([&] { Cache x(c); }), "kv cache: page_tokens 8 is outside 16..256");
  c = small_config(0);
  c.budget_bytes = 100;
  EXPECT_NE(error_of([&] { Cache x(c); }).find("kv cache budget 100 B holds no page"),
            std::string::npos);
  c.n_pages = 3;
  EXPECT_NE(error_of([&] { Cache x(c); }).find("exactly one"), std::string::npos);
}

TEST(Cache, BudgetHoldsWholePages) {
  CacheConfig c = small_config(0);
  Cache probe(small_config(1));
  c.budget_bytes = 10 * probe.page_bytes() + probe.page_bytes() / 2;
  Cache cache(c);
  EXPECT_EQ(cache.n_pages(), 10u);
  // page bytes: 16 tokens x 2 layers x 2 heads x (8 + 16) dims x 4 bytes.
  EXPECT_EQ(cache.page_bytes(), 16u * 2 * 2 * 24 * 4);
  EXPECT_EQ(cache.residency().reserved.bytes, 10 * cache.page_bytes());
}

TEST(Cache, TruncateWithinTheTailAndThroughEncodedPages) {
  for (const char* policy : {"k=f32,v=f32", "k=f16,v=bf16"}) {
    Cache cache(small_config(8, policy));
    const SeqId s = cache.create();
    auto tokens = iota_tokens(60);
    extend(cache, s, tokens, 0, 60);
    cache.truncate(s, 5);  // tail only: 55 tokens
    tokens.resize(55);
    expect_reads_back(cache, s, tokens);
    EXPECT_EQ(cache.page_table(s).size(), 4u);
    cache.truncate(s, 30);  // 25 tokens: page 1 is cut, its 9 tokens go back to the tail
    tokens.resize(25);
    EXPECT_EQ(cache.view(s, 0).page_ids.size(), 1u);
    EXPECT_EQ(cache.view(s, 0).tail_tokens, 9);
    EXPECT_EQ(cache.page_table(s).size(), 2u);
    expect_reads_back(cache, s, tokens);  // exactly representable data: decoding is exact
    auto more = tokens;
    for (int i = 0; i < 30; ++i) more.push_back(5000 + i);
    extend(cache, s, more, 25, 55);
    expect_reads_back(cache, s, more);
    EXPECT_EQ(cache.residency().active.pages, 4u);
    cache.check_invariants();
  }
}

TEST(Cache, ForkSharesFullPagesAndCopiesTheTailOnFirstWrite) {
  Cache cache(small_config(12));
  const SeqId a = cache.create();
  const auto tokens = iota_tokens(40);
  extend(cache, a, tokens, 0, 40);  // pages 0, 1 full, page 2 holds 8
  const SeqId b = cache.fork(a);
  EXPECT_EQ(cache.page_table(b), cache.page_table(a));
  for (uint32_t page : cache.page_table(a)) EXPECT_EQ(cache.page_info(page).refcount, 2u);
  EXPECT_EQ(cache.residency().shared.pages, 3u);
  expect_reads_back(cache, b, tokens);
  EXPECT_EQ(cache.residency().counters.copy_on_writes, 0u);

  auto ta = tokens, tb = tokens;
  for (int i = 0; i < 20; ++i) {
    ta.push_back(7000 + i);
    tb.push_back(8000 + i);
  }
  extend(cache, b, tb, 40, 60);  // b writes first: it copies the tail and takes a new page 2
  EXPECT_EQ(cache.residency().counters.copy_on_writes, 1u);
  extend(cache, a, ta, 40, 60);  // a is now the only holder of its page 2: no copy
  EXPECT_EQ(cache.residency().counters.copy_on_writes, 1u);
  expect_reads_back(cache, a, ta);
  expect_reads_back(cache, b, tb);
  const auto pa = cache.page_table(a), pb = cache.page_table(b);
  EXPECT_EQ(pa[0], pb[0]);
  EXPECT_EQ(pa[1], pb[1]);
  EXPECT_NE(pa[2], pb[2]);
  EXPECT_EQ(cache.residency().shared.pages, 2u);
  cache.check_invariants();
  cache.free(a);
  expect_reads_back(cache, b, tb);
  cache.free(b);
  const Residency r = cache.residency();
  EXPECT_EQ(r.active.pages + r.shared.pages, 0u);
  EXPECT_EQ(r.cached.pages, 4u);  // pages 0, 1 (shared), a's page 2 and b's page 2
  cache.check_invariants();
}

TEST(Cache, TruncatingASharedPageCopiesItOnTheNextWrite) {
  Cache cache(small_config(12));
  const SeqId a = cache.create();
  const auto tokens = iota_tokens(48);
  extend(cache, a, tokens, 0, 48);
  const SeqId b = cache.fork(a);
  cache.truncate(b, 20);  // b keeps 28: its page 1 is shared with a and cut
  const uint32_t shared_page = cache.page_table(a)[1];
  EXPECT_EQ(cache.page_table(b)[1], shared_page);
  auto tb = tokens;
  tb.resize(28);
  expect_reads_back(cache, b, tb);
  tb.push_back(42);
  extend(cache, b, tb, 28, 29);
  EXPECT_NE(cache.page_table(b)[1], shared_page);
  EXPECT_EQ(cache.page_info(shared_page).refcount, 1u);
  expect_reads_back(cache, a, tokens);
  expect_reads_back(cache, b, tb);
  cache.check_invariants();
}

TEST(Cache, CompactionMovesPagesDownAndShrinkReleasesTheTail) {
  Cache cache(small_config(32));
  std::vector<SeqId> seqs;
  std::vector<std::vector<int32_t>> toks;
  for (int i = 0; i < 4; ++i) {
    seqs.push_back(cache.create());
    toks.push_back(iota_tokens(100, 10000 * (i + 1)));
    extend(cache, seqs.back(), toks.back(), 0, 100);  // 7 pages each
  }
  cache.free(seqs[0]);  // 6 full pages cached, 1 free
  cache.free(seqs[2]);
  const Residency before = cache.residency();
  EXPECT_EQ(before.cached.pages, 12u);
  const uint64_t moved = cache.compact();
  EXPECT_GT(moved, 0u);
  const Residency after = cache.residency();
  EXPECT_EQ(after.counters.pages_moved, moved);
  EXPECT_EQ(after.cached.pages, 12u);
  EXPECT_EQ(after.active.pages, 14u);
  for (int i : {1, 3}) {
    for (uint32_t page : cache.page_table(seqs[i])) EXPECT_LT(page, 26u);
    expect_reads_back(cache, seqs[i], toks[i]);
  }
  cache.check_invariants();
  // The cached pages still serve prefix hits after moving.
  const SeqId again = cache.create();
  EXPECT_EQ(cache.attach_prefix(again, toks[0]), 96);
  expect_reads_back(cache, again, std::vector<int32_t>(toks[0].begin(), toks[0].begin() + 96));
  cache.free(again);
  // 28 pages were touched; 26 are live after compaction.
  EXPECT_EQ(cache.shrink(), 2 * cache.page_bytes());
  EXPECT_EQ(cache.residency().touched_bytes, 26 * cache.page_bytes());
  EXPECT_EQ(cache.shrink(), 0u);
  // Released pages are reusable.
  const SeqId s = cache.create();
  extend(cache, s, toks[0], 0, 100);
  expect_reads_back(cache, s, toks[0]);
  cache.check_invariants();
}

TEST(Cache, ResidencyReportCountsEveryState) {
  Cache cache(small_config(10));
  const SeqId a = cache.create();
  extend(cache, a, iota_tokens(40), 0, 40);
  const SeqId b = cache.fork(a);
  const SeqId c = cache.create();
  extend(cache, c, iota_tokens(20, 500), 0, 20);
  cache.free(c);  // one full page cached, one freed
  const Residency r = cache.residency();
  EXPECT_EQ(r.reserved.pages, 10u);
  EXPECT_EQ(r.shared.pages, 3u);
  EXPECT_EQ(r.shared_holders, 6u);
  EXPECT_EQ(r.shared_saved_bytes(), 3 * cache.page_bytes());
  EXPECT_EQ(r.active.pages, 0u);
  EXPECT_EQ(r.cached.pages, 1u);
  EXPECT_EQ(r.free.pages, 6u);
  EXPECT_EQ(r.sequences, 2u);
  EXPECT_EQ(r.tokens, 80u);
  EXPECT_EQ(r.tail_unused_slots, 16u);          // 8 per sequence in the shared last page
  EXPECT_EQ(r.counters.appended_tokens, 120u);  // 60 tokens x 2 layers
  EXPECT_EQ(r.counters.encoded_pages, 6u);      // 3 full pages x 2 layers
  const std::string json = r.to_json();
  EXPECT_NE(json.find("\"shared\": {\n    \"pages\": 3"), std::string::npos) << json;
  const std::string table = r.to_table();
  EXPECT_NE(table.find("shared"), std::string::npos);
  EXPECT_NE(table.find("copy-on-writes 0"), std::string::npos) << table;
  (void)b;
}

}  // namespace
}  // namespace kvpack::cache
