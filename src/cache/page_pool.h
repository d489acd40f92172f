// The page pool: which page ids are free, in use (and by how many holders), or cached for prefix
// reuse. It knows nothing of bytes, layers or sequences; the Cache owns those and guards the
// pool with its allocation lock (the pool itself is not thread-safe).
//
// Every page is in exactly one state:
//
//   free    ref == 0, no hash        in the free heap (allocation takes the lowest id first,
//                                    which keeps the arena dense and shrink() effective)
//   cached  ref == 0, hash           in the LRU list, oldest first: the eviction candidates
//   used    ref >= 1, hash or none   in neither; a hash means its content is a complete page
//                                    that attach_prefix may hand to another holder
//
// Invariants (asserted in debug builds, all checked by check_invariants()):
//   1. free + cached + used == capacity; every page's state matches the list it is on.
//   2. index_[h] == id  <=>  page id is hashed with h (one page per hash, one hash per page).
//   3. allocate() returns pages that were free or cached, now used with ref == 1 and no hash;
//      evicting a cached page drops its hash then, never earlier.
//   4. A used page is never evicted: only the LRU list is evicted, and it holds ref == 0 only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace kvpack::cache {

class PagePool {
 public:
  explicit PagePool(uint32_t capacity);

  uint32_t capacity() const { return static_cast<uint32_t>(pages_.size() - 1); }
  uint32_t free_pages() const { return static_cast<uint32_t>(free_heap_.size()); }
  uint32_t cached_pages() const { return n_cached_; }
  uint32_t used_pages() const { return capacity() - free_pages() - cached_pages(); }
  // Pages allocate() can hand out now: free ones, then cached ones by eviction.
  uint32_t available() const { return free_pages() + cached_pages(); }
  uint64_t evictions() const { return evictions_; }
  // The most pages used at once since construction.
  uint32_t peak_used() const { return peak_used_; }
  // One past the highest id ever handed out since construction or the last lower_touched().
  uint32_t touched() const { return touched_; }

  // Takes n pages, free ones first (lowest id first), then the least recently used cached ones.
  // All or nothing: throws Error("kv cache full: need n pages, f free, c evictable") and
  // changes nothing when fewer than n are available. Appends the ids to out.
  void allocate(uint32_t n, std::vector<uint32_t>& out);
  // One more holder. A cached page leaves the LRU list (a prefix hit).
  void ref(uint32_t id);
  // One holder fewer. At zero a hashed page joins the LRU list as most recent, else it is free.
  void unref(uint32_t id);

  uint32_t refcount(uint32_t id) const { return pages_[id].ref; }
  bool hashed(uint32_t id) const { return pages_[id].hashed; }
  uint64_t hash(uint32_t id) const { return pages_[id].hash; }
  // Gives used page id the hash h. Returns false (and changes nothing) when another page
  // already has h: one cached copy per content is enough.
  bool set_hash(uint32_t id, uint64_t h);
  // The page holding hash h, if any (used or cached).
  std::optional<uint32_t> lookup(uint64_t h) const;

  // Relabels pages so every used or cached page has an id below used + cached, keeping each
  // page's refcount, hash and LRU position. Returns old id -> new id for every page (identity
  // for pages that stay); `moved` gets the (old, new) pairs whose bytes must be copied.
  std::vector<uint32_t> compact(std::vector<std::pair<uint32_t, uint32_t>>& moved);
  // One past the highest used or cached id (0 when every page is free).
  uint32_t live_end() const;
  // Lowers touched() to `end` (after the caller released the memory of pages >= end).
  void lower_touched(uint32_t end);

  // Checks invariants 1-4 over every page; throws (via KVPACK_ASSERT) on the first violation.
  void check_invariants() const;

 private:
  enum class State : uint8_t { kFree, kCached, kUsed };
  struct Page {
    uint32_t ref = 0;
    State state = State::kFree;
    bool hashed = false;
    uint64_t hash = 0;
    uint32_t prev = 0;  // LRU links (page ids; sentinel() is the list head), cached pages only
    uint32_t next = 0;
  };

  uint32_t sentinel() const { return capacity(); }
  void lru_push_back(uint32_t id);
  void lru_remove(uint32_t id);
  void free_push(uint32_t id);
  uint32_t free_pop();
  uint32_t take_one();
  void relabel(uint32_t from, uint32_t to);

  // [capacity + 1]; the last entry is the LRU list's sentinel: its next is the oldest cached
  // page, its prev the most recent.
  std::vector<Page> pages_;
  std::vector<uint32_t> free_heap_;  // min-heap of free ids
  uint32_t n_cached_ = 0;
  std::unordered_map<uint64_t, uint32_t> index_;  // hash -> page id
  uint64_t evictions_ = 0;
  uint32_t touched_ = 0;
  uint32_t peak_used_ = 0;
};

}  // namespace kvpack::cache
