// The page pool (see page_pool.h for the states and invariants).
#include "cache/page_pool.h"

#include <algorithm>
#include <functional>

#include "base/error.h"

namespace kvpack::cache {

PagePool::PagePool(uint32_t capacity) : pages_(static_cast<size_t>(capacity) + 1) {
  KVPACK_ASSERT(capacity > 0 && capacity < UINT32_MAX, "page pool capacity {}", capacity);
  pages_[sentinel()].prev = pages_[sentinel()].next = sentinel();
  free_heap_.resize(capacity);
  for (uint32_t i = 0; i < capacity; ++i) free_heap_[i] = i;  // ascending: already a min-heap
}

void PagePool::lru_push_back(uint32_t id) {
  Page& s = pages_[sentinel()];
  pages_[id].prev = s.prev;
  pages_[id].next = sentinel();
  pages_[s.prev].next = id;
  s.prev = id;
}

void PagePool::lru_remove(uint32_t id) {
  Page& p = pages_[id];
  pages_[p.prev].next = p.next;
  pages_[p.next].prev = p.prev;
  p.prev = p.next = id;
}

void PagePool::free_push(uint32_t id) {
  free_heap_.push_back(id);
  std::push_heap(free_heap_.begin(), free_heap_.end(), std::greater<>());
}

uint32_t PagePool::free_pop() {
  std::pop_heap(free_heap_.begin(), free_heap_.end(), std::greater<>());
  const uint32_t id = free_heap_.back();
  free_heap_.pop_back();
  return id;
}

uint32_t PagePool::take_one() {
  uint32_t id;
  if (!free_heap_.empty()) {
    id = free_pop();
    KVPACK_DASSERT(pages_[id].state == State::kFree && !pages_[id].hashed, "page {}", id);
  } else {
    id = pages_[sentinel()].next;  // oldest cached page
    KVPACK_ASSERT(id != sentinel(), "allocate() with no free or cached page");
    Page& p = pages_[id];
    KVPACK_DASSERT(p.state == State::kCached && p.ref == 0 && p.hashed, "evicting page {}", id);
    lru_remove(id);
    index_.erase(p.hash);  // the hash goes only now, when the page is reused
    p.hashed = false;
    p.hash = 0;
    --n_cached_;
    ++evictions_;
  }
  Page& p = pages_[id];
  KVPACK_DASSERT(p.ref == 0, "allocating page {} with ref {}", id, p.ref);
  p.ref = 1;
  p.state = State::kUsed;
  touched_ = std::max(touched_, id + 1);
  return id;
}

void PagePool::allocate(uint32_t n, std::vector<uint32_t>& out) {
  if (n > available()) {
    fail("kv cache full: need {} page{}, {} free, {} evictable", n, n == 1 ? "" : "s", free_pages(),
         cached_pages());
  }
  out.reserve(out.size() + n);
  for (uint32_t i = 0; i < n; ++i) out.push_back(take_one());
  peak_used_ = std::max(peak_used_, used_pages());
}

void PagePool::ref(uint32_t id) {
  KVPACK_ASSERT(id < capacity() && pages_[id].state != State::kFree, "ref of free page {}", id);
  Page& p = pages_[id];
  if (p.state == State::kCached) {
    lru_remove(id);
    --n_cached_;
    p.state = State::kUsed;
    peak_used_ = std::max(peak_used_, used_pages());
  }
  ++p.ref;
}

void PagePool::unref(uint32_t id) {
  KVPACK_ASSERT(id < capacity() && pages_[id].state == State::kUsed && pages_[id].ref > 0,
                "unref of page {} that has no holder", id);
  Page& p = pages_[id];
  if (--p.ref > 0) return;
  if (p.hashed) {
    p.state = State::kCached;
    lru_push_back(id);
    ++n_cached_;
  } else {
    p.state = State::kFree;
    free_push(id);
  }
}

bool PagePool::set_hash(uint32_t id, uint64_t h) {
  Page& p = pages_[id];
  KVPACK_ASSERT(p.state == State::kUsed && !p.hashed, "hashing page {} (ref {}, hashed {})", id,
                p.ref, p.hashed);
  if (!index_.emplace(h, id).second) return false;
  p.hashed = true;
  p.hash = h;
  return true;
}

std::optional<uint32_t> PagePool::lookup(uint64_t h) const {
  const auto it = index_.find(h);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void PagePool::relabel(uint32_t from, uint32_t to) {
  KVPACK_DASSERT(pages_[to].state == State::kFree, "relabel onto non-free page {}", to);
  Page p = pages_[from];
  if (p.state == State::kCached) {  // take `from`'s place in the LRU list
    pages_[p.prev].next = to;
    pages_[p.next].prev = to;
  }
  if (p.hashed) index_[p.hash] = to;
  pages_[to] = p;
  pages_[from] = Page{};
}

std::vector<uint32_t> PagePool::compact(std::vector<std::pair<uint32_t, uint32_t>>& moved) {
  const uint32_t live = used_pages() + cached_pages();
  std::vector<uint32_t> remap(capacity());
  for (uint32_t i = 0; i < capacity(); ++i) remap[i] = i;
  uint32_t lo = 0;
  uint32_t hi = capacity();  // one past the next candidate to move down
  while (true) {
    while (lo < live && pages_[lo].state != State::kFree) ++lo;
    while (hi > live && pages_[hi - 1].state == State::kFree) --hi;
    if (lo >= live || hi <= live) break;
    relabel(hi - 1, lo);
    remap[hi - 1] = lo;
    moved.emplace_back(hi - 1, lo);
    ++lo;
    --hi;
  }
  free_heap_.clear();
  for (uint32_t i = live; i < capacity(); ++i) free_heap_.push_back(i);  // ascending: a min-heap
  KVPACK_DASSERT(live_end() == live, "compaction left a live page above {}", live);
  return remap;
}

uint32_t PagePool::live_end() const {
  uint32_t end = capacity();
  while (end > 0 && pages_[end - 1].state == State::kFree) --end;
  return end;
}

void PagePool::lower_touched(uint32_t end) {
  KVPACK_ASSERT(end >= live_end(), "releasing live pages: end {} < live end {}", end, live_end());
  touched_ = std::min(touched_, end);
}

void PagePool::check_invariants() const {
  uint32_t n_free = 0, n_cached = 0, n_hashed = 0;
  for (uint32_t id = 0; id < capacity(); ++id) {
    const Page& p = pages_[id];
    switch (p.state) {
      case State::kFree:
        KVPACK_ASSERT(p.ref == 0 && !p.hashed, "free page {}: ref {}, hashed {}", id, p.ref,
                      p.hashed);
        ++n_free;
        break;
      case State::kCached:
        KVPACK_ASSERT(p.ref == 0 && p.hashed, "cached page {}: ref {}, hashed {}", id, p.ref,
                      p.hashed);
        ++n_cached;
        break;
      case State::kUsed:
        KVPACK_ASSERT(p.ref > 0, "used page {} has no holder", id);
        break;
    }
    if (p.hashed) {
      ++n_hashed;
      const auto it = index_.find(p.hash);
      KVPACK_ASSERT(it != index_.end() && it->second == id, "page {}: hash not indexed", id);
    }
  }
  KVPACK_ASSERT(n_hashed == index_.size(), "index has {} hashes, pages {}", index_.size(),
                n_hashed);
  KVPACK_ASSERT(n_cached == n_cached_, "cached pages {} != count {}", n_cached, n_cached_);
  KVPACK_ASSERT(n_free == free_heap_.size(), "free pages {} != heap {}", n_free, free_heap_.size());
  KVPACK_ASSERT(std::is_heap(free_heap_.begin(), free_heap_.end(), std::greater<>()),
                "free heap order");
  for (uint32_t id : free_heap_) {
    KVPACK_ASSERT(id < capacity() && pages_[id].state == State::kFree, "heap holds page {}", id);
  }
  uint32_t walked = 0;
  for (uint32_t id = pages_[sentinel()].next; id != sentinel(); id = pages_[id].next) {
    KVPACK_ASSERT(id < capacity() && pages_[id].state == State::kCached, "LRU holds page {}", id);
    KVPACK_ASSERT(pages_[pages_[id].next].prev == id, "LRU links broken at page {}", id);
    KVPACK_ASSERT(++walked <= n_cached_, "LRU list longer than {} (cycle?)", n_cached_);
  }
  KVPACK_ASSERT(walked == n_cached_, "LRU list has {} pages, count {}", walked, n_cached_);
  KVPACK_ASSERT(touched_ >= live_end(), "touched {} below live end {}", touched_, live_end());
}

}  // namespace kvpack::cache
