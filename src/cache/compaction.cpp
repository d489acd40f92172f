// Compaction and shrink: both move or release pages under every page table, so they take the
// world lock exclusively and run alone.
#include <algorithm>
#include <mutex>

#include "cache/cache_state.h"

namespace kvpack::cache {

uint64_t Cache::compact() {
  State& s = *s_;
  std::unique_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  std::vector<std::pair<uint32_t, uint32_t>> moved;
  const std::vector<uint32_t> remap = s.pool->compact(moved);
  for (const auto& [from, to] : moved) {
    s.arena->copy_page(from, to);
    s.page_group[to] = s.page_group[from];  // `to` was free and is never moved from
  }
  if (!moved.empty()) {
    const auto relabel = [&](uint32_t& page) {
      if (page != kNoPage) page = remap[page];
    };
    for (const auto& q : s.seqs) {
      if (!q) continue;
      for (GroupTable& t : q->groups) std::for_each(t.pages.begin(), t.pages.end(), relabel);
      if (!q->step) continue;
      for (GroupUndo& u : q->step->groups) {
        for (auto& [index, page] : u.displaced) relabel(page);
        std::for_each(u.spares.begin(), u.spares.end(), relabel);
      }
    }
  }
  ++s.counters.compactions;
  s.counters.pages_moved += moved.size();
  return moved.size();
}

uint64_t Cache::shrink() {
  State& s = *s_;
  std::unique_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  const uint32_t end = s.pool->live_end();
  const uint32_t touched = s.pool->touched();
  if (touched <= end) return 0;
  s.arena->release(end);
  s.pool->lower_touched(end);
  const uint64_t bytes = static_cast<uint64_t>(touched - end) * s.arena->page_bytes();
  s.counters.bytes_released += bytes;
  return bytes;
}

}  // namespace kvpack::cache
