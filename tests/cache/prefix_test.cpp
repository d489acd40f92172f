// Prefix reuse: page keys, attach_prefix, the salt, and eviction order.
#include <gtest/gtest.h>

#include "cache/prefix_hash.h"
#include "cache_test_util.h"

namespace kvpack::cache {
namespace {

using testing::extend;
using testing::iota_tokens;
using testing::read_back;
using testing::rows_for;
using testing::small_config;

std::vector<int32_t> with_suffix(std::vector<int32_t> prefix, size_t n, int32_t first) {
  for (size_t i = 0; i < n; ++i) prefix.push_back(first + static_cast<int32_t>(i));
  return prefix;
}

void expect_reads_back(const Cache& cache, SeqId seq, const std::vector<int32_t>& tokens) {
  for (int l = 0; l < cache.config().n_layers; ++l) {
    const auto got = read_back(cache.view(seq, l));
    const auto want = rows_for(cache.config(), l, tokens, 0, tokens.size());
    ASSERT_EQ(got.k, want.k) << "layer " << l;
    ASSERT_EQ(got.v, want.v) << "layer " << l;
  }
}

CacheConfig prefix_config(uint32_t n_pages) {
  CacheConfig c = small_config(n_pages, "k=f16,v=f16", 32);
  return c;
}

TEST(Prefix, TwoSequencesWithACommon1000TokenPrefixShareItsFullPages) {
  Cache cache(prefix_config(128));
  const auto prefix = iota_tokens(1000);
  const auto ta = with_suffix(prefix, 200, 50000);
  const auto tb = with_suffix(prefix, 300, 60000);
  const SeqId a = cache.create();
  EXPECT_EQ(cache.attach_prefix(a, ta), 0);
  extend(cache, a, ta, 0, ta.size());
  const SeqId b = cache.create();
  const int64_t reused = cache.attach_prefix(b, tb);
  EXPECT_EQ(reused, 992);  // 31 whole pages of 32; token 992.. differ in a's page 31
  extend(cache, b, tb, static_cast<size_t>(reused), tb.size());
  const auto pa = cache.page_table(a), pb = cache.page_table(b);
  for (size_t p = 0; p < 31; ++p) {
    EXPECT_EQ(pa[p], pb[p]) << p;
    EXPECT_EQ(cache.page_info(pa[p]).refcount, 2u);
    EXPECT_TRUE(cache.page_info(pa[p]).hashed);
  }
  EXPECT_NE(pa[31], pb[31]);
  const Residency r = cache.residency();
  EXPECT_EQ(r.shared.pages, 31u);
  EXPECT_EQ(r.shared_saved_bytes(), 31 * cache.page_bytes());
  EXPECT_EQ(r.counters.prefix_hit_tokens, 992u);
  EXPECT_EQ(r.counters.prefix_miss_tokens, ta.size() + tb.size() - 992);
  expect_reads_back(cache, a, ta);
  expect_reads_back(cache, b, tb);
  cache.check_invariants();
}

TEST(Prefix, FreedPagesStayCachedUntilReused) {
  Cache cache(prefix_config(64));
  const auto t = iota_tokens(300);
  const SeqId a = cache.create();
  extend(cache, a, t, 0, t.size());
  cache.free(a);
  EXPECT_EQ(cache.residency().cached.pages, 9u);  // 9 full pages; the partial 10th is free
  const SeqId b = cache.create();
  EXPECT_EQ(cache.attach_prefix(b, t), 288);
  EXPECT_EQ(cache.residency().cached.pages, 0u);
  EXPECT_EQ(cache.residency().active.pages, 9u);
  extend(cache, b, t, 288, t.size());
  expect_reads_back(cache, b, t);
  // A prompt that is a whole number of pages: attach all but the last token to keep one to
  // compute logits from.
  const SeqId c = cache.create();
  EXPECT_EQ(cache.attach_prefix(c, std::span<const int32_t>(t).first(256)), 256);
  const SeqId d = cache.create();
  EXPECT_EQ(cache.attach_prefix(d, std::span<const int32_t>(t).first(255)), 224);
  cache.check_invariants();
}

TEST(Prefix, ADifferentSaltNeverShares) {
  const auto t = iota_tokens(200);
  // Within one cache: sequences created with different salts (e.g. an adapter).
  Cache cache(prefix_config(64));
  const SeqId a = cache.create("adapter-1");
  extend(cache, a, t, 0, t.size());
  EXPECT_EQ(cache.attach_prefix(cache.create("adapter-2"), t), 0);
  EXPECT_EQ(cache.attach_prefix(cache.create(), t), 0);
  EXPECT_EQ(cache.attach_prefix(cache.create("adapter-1"), t), 192);
  // Across configurations: the model, RoPE settings, formats (even of one layer), page size and
  // codec seed all change every page key.
  const CacheConfig base = prefix_config(64);
  std::vector<CacheConfig> others(6, base);
  others[0].salt = "other-model rope_theta=10000";
  others[1].salt = "test-model rope_theta=500000";
  others[2].policy = format::KVPolicy::parse("k=f16,v=bf16");
  others[3].policy = format::KVPolicy::parse("k=f16,v=f16;-1:k=f32");
  others[4].page_tokens = 16;
  others[5].model_seed = 7;
  const uint64_t base_salt = cache_salt(base);
  const std::vector<int32_t> page(t.begin(), t.begin() + 32);
  for (const CacheConfig& c : others) {
    EXPECT_NE(cache_salt(c), base_salt) << salt_text(c);
    EXPECT_NE(page_key(cache_salt(c), 0, page), page_key(base_salt, 0, page));
  }
  EXPECT_EQ(cache_salt(prefix_config(8)), base_salt);  // the arena size does not matter
  EXPECT_NE(page_key(base_salt, 1, page), page_key(base_salt, 0, page));  // nor does the parent
}

TEST(Prefix, EvictsLeastRecentlyFreedPagesFirstAndTheirEndsBeforeTheirStarts) {
  Cache cache(prefix_config(12));
  const auto old_t = iota_tokens(128, 1);      // 4 pages
  const auto new_t = iota_tokens(128, 90000);  // 4 pages
  const SeqId a = cache.create();
  extend(cache, a, old_t, 0, old_t.size());
  const SeqId b = cache.create();
  extend(cache, b, new_t, 0, new_t.size());
  cache.free(a);
  cache.free(b);
  EXPECT_EQ(cache.residency().cached.pages, 8u);
  const SeqId c = cache.create();
  extend(cache, c, iota_tokens(6 * 32, 500000), 0, 6 * 32);  // 4 free + 2 evicted
  EXPECT_EQ(cache.residency().counters.evictions, 2u);
  // a's last two pages went; its first two and all of b remain.
  EXPECT_EQ(cache.attach_prefix(cache.create(), old_t), 64);
  EXPECT_EQ(cache.attach_prefix(cache.create(), new_t), 128);
  cache.check_invariants();
}

TEST(Prefix, EvictionNeverTouchesReferencedPages) {
  Cache cache(prefix_config(8));
  const auto t = iota_tokens(128);
  const SeqId a = cache.create();
  extend(cache, a, t, 0, t.size());  // 4 pages, hashed, held
  const SeqId b = cache.create();
  extend(cache, b, iota_tokens(128, 7000), 0, 128);
  cache.free(b);  // 4 cached
  const SeqId c = cache.create();
  const auto tc = iota_tokens(160, 9000);
  EXPECT_NE(testing::error_of([&] { cache.add_tokens(c, tc); }), "");  // needs 5 of 4
  extend(cache, c, tc, 0, 128);                                        // evicts b's four, never a's
  EXPECT_EQ(cache.residency().counters.evictions, 4u);
  expect_reads_back(cache, a, t);
  EXPECT_EQ(testing::error_of([&] { cache.add_tokens(c, iota_tokens(1)); }),
            "kv cache full: need 1 page, 0 free, 0 evictable");
  cache.check_invariants();
}

}  // namespace
}  // namespace kvpack::cache
