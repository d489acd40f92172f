// The page pool alone: states, allocation order, LRU eviction, hashing, compaction, and a
// randomized run against a plain model of holders.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/error.h"
#include "base/rng.h"
#include "cache/page_pool.h"

namespace kvpack::cache {
namespace {

std::vector<uint32_t> take(PagePool& pool, uint32_t n) {
  std::vector<uint32_t> out;
  pool.allocate(n, out);
  return out;
}

TEST(PagePool, AllocatesLowestFreeIdsFirst) {
  PagePool pool(8);
  EXPECT_EQ(take(pool, 3), (std::vector<uint32_t>{0, 1, 2}));
  pool.unref(1);
  EXPECT_EQ(take(pool, 2), (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(pool.used_pages(), 4u);
  EXPECT_EQ(pool.refcount(1), 1u);
  EXPECT_EQ(pool.touched(), 4u);
  pool.check_invariants();
}

TEST(PagePool, FullPoolFailsWithCountsAndChangesNothing) {
  PagePool pool(4);
  const auto a = take(pool, 3);
  ASSERT_TRUE(pool.set_hash(a[0], 77));
  pool.unref(a[0]);  // cached: evictable
  std::vector<uint32_t> out;
  try {
    pool.allocate(3, out);
    FAIL() << "allocate(3) succeeded with 2 available";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "kv cache full: need 3 pages, 1 free, 1 evictable");
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(pool.free_pages(), 1u);
  EXPECT_EQ(pool.cached_pages(), 1u);
  EXPECT_EQ(pool.lookup(77), a[0]);
  EXPECT_EQ(pool.evictions(), 0u);
  pool.check_invariants();
}

TEST(PagePool, FreedHashedPagesStayCachedAndEvictLeastRecentFirst) {
  PagePool pool(4);
  const auto a = take(pool, 4);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(pool.set_hash(a[i], 100 + i));
  pool.unref(a[2]);  // LRU order: 2, 0, 3
  pool.unref(a[0]);
  pool.unref(a[3]);
  EXPECT_EQ(pool.cached_pages(), 3u);
  EXPECT_EQ(pool.lookup(102), a[2]);
  pool.ref(a[0]);    // a prefix hit takes page 0 off the LRU list
  pool.unref(a[0]);  // ... and freeing it again makes it the most recent: order 2, 3, 0
  EXPECT_EQ(take(pool, 1), (std::vector<uint32_t>{a[2]}));
  EXPECT_FALSE(pool.lookup(102).has_value());  // the hash goes when the page is reused
  EXPECT_FALSE(pool.hashed(a[2]));
  EXPECT_EQ(take(pool, 1), (std::vector<uint32_t>{a[3]}));
  EXPECT_EQ(pool.evictions(), 2u);
  EXPECT_EQ(pool.lookup(100), a[0]);
  pool.check_invariants();
}

TEST(PagePool, FreePagesGoBeforeCachedOnes) {
  PagePool pool(3);
  const auto a = take(pool, 3);
  ASSERT_TRUE(pool.set_hash(a[0], 5));
  pool.unref(a[0]);
  pool.unref(a[2]);
  EXPECT_EQ(take(pool, 1), (std::vector<uint32_t>{a[2]}));
  EXPECT_EQ(pool.evictions(), 0u);
  EXPECT_EQ(pool.lookup(5), a[0]);
}

TEST(PagePool, OneCachedPagePerHash) {
  PagePool pool(2);
  const auto a = take(pool, 2);
  EXPECT_TRUE(pool.set_hash(a[0], 9));
  EXPECT_FALSE(pool.set_hash(a[1], 9));
  EXPECT_FALSE(pool.hashed(a[1]));
  pool.unref(a[1]);  // unhashed: free, not cached
  EXPECT_EQ(pool.free_pages(), 1u);
  EXPECT_EQ(pool.cached_pages(), 0u);
}

TEST(PagePool, CompactionKeepsHoldersHashesAndLruOrder) {
  PagePool pool(10);
  const auto a = take(pool, 10);
  for (uint32_t id : {0u, 2u, 3u, 5u}) pool.unref(a[id]);  // free
  ASSERT_TRUE(pool.set_hash(a[9], 90));
  ASSERT_TRUE(pool.set_hash(a[7], 70));
  pool.unref(a[9]);  // cached, older
  pool.unref(a[7]);  // cached, newer
  pool.ref(a[8]);    // refcount 2
  std::vector<std::pair<uint32_t, uint32_t>> moved;
  const auto remap = pool.compact(moved);
  EXPECT_EQ(pool.live_end(), 6u);
  EXPECT_EQ(moved.size(), 4u);  // 9, 8, 7, 6 move into the free 0, 2, 3, 5
  EXPECT_EQ(remap[9], 0u);
  EXPECT_EQ(remap[8], 2u);
  EXPECT_EQ(remap[7], 3u);
  EXPECT_EQ(remap[6], 5u);
  EXPECT_EQ(remap[4], 4u);
  EXPECT_EQ(pool.refcount(remap[8]), 2u);
  EXPECT_EQ(pool.lookup(90), remap[9]);
  EXPECT_EQ(pool.lookup(70), remap[7]);
  pool.check_invariants();
  // LRU order survived the relabeling: the page that was 9 goes first.
  EXPECT_EQ(take(pool, 4), (std::vector<uint32_t>{6, 7, 8, 9}));  // the free ones
  EXPECT_EQ(take(pool, 1), (std::vector<uint32_t>{remap[9]}));
  EXPECT_EQ(take(pool, 1), (std::vector<uint32_t>{remap[7]}));
  pool.check_invariants();
}

// Random ref/unref/hash/allocate/compact against a map of holders.
TEST(PagePool, RandomOperationsMatchAModel) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    PagePool pool(64);
    Rng rng(seed);
    std::map<uint32_t, uint32_t> holders;  // used page -> holders
    std::set<uint32_t> hashed;
    uint64_t next_hash = 1;
    for (int op = 0; op < 20000; ++op) {
      const uint64_t kind = rng.below(10);
      if (kind < 4) {
        const uint32_t n = static_cast<uint32_t>(rng.below(5)) + 1;
        std::vector<uint32_t> out;
        if (n > pool.available()) {
          EXPECT_THROW(pool.allocate(n, out), Error);
          EXPECT_TRUE(out.empty());
          continue;
        }
        pool.allocate(n, out);
        for (uint32_t id : out) {
          ASSERT_EQ(holders.count(id), 0u) << "allocated a page with holders";
          holders[id] = 1;
          hashed.erase(id);
        }
      } else if (kind < 7 && !holders.empty()) {
        auto it = std::next(holders.begin(), static_cast<long>(rng.below(holders.size())));
        pool.unref(it->first);
        if (--it->second == 0) holders.erase(it);
      } else if (kind < 8 && !holders.empty()) {
        auto it = std::next(holders.begin(), static_cast<long>(rng.below(holders.size())));
        pool.ref(it->first);
        ++it->second;
        if (!pool.hashed(it->first) && pool.set_hash(it->first, next_hash++)) {
          hashed.insert(it->first);
        }
      } else if (kind < 9 && !hashed.empty()) {  // a prefix hit on a hashed page
        auto it = std::next(hashed.begin(), static_cast<long>(rng.below(hashed.size())));
        ASSERT_EQ(pool.lookup(pool.hash(*it)), *it);
        pool.ref(*it);
        ++holders[*it];
      } else if (kind == 9 && rng.below(20) == 0) {
        std::vector<std::pair<uint32_t, uint32_t>> moved;
        const auto remap = pool.compact(moved);
        std::map<uint32_t, uint32_t> h2;
        std::set<uint32_t> s2;
        for (auto [id, n] : holders) h2[remap[id]] = n;
        for (uint32_t id : hashed) s2.insert(remap[id]);
        holders.swap(h2);
        hashed.swap(s2);
      }
      for (auto [id, n] : holders) ASSERT_EQ(pool.refcount(id), n) << "page " << id;
      if (op % 100 == 0) pool.check_invariants();
    }
    pool.check_invariants();
  }
}

}  // namespace
}  // namespace kvpack::cache
