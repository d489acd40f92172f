// The residency report (where the arena's pages are, counters) and the diagnostics tests use.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "base/error.h"
#include "base/table.h"
#include "base/units.h"
#include "cache/cache_state.h"

namespace kvpack::cache {

Residency Cache::residency() const {
  const State& s = *s_;
  std::shared_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  Residency r;
  r.page_tokens = s.page_tokens();
  r.page_bytes = s.arena->page_bytes();
  const PagePool& pool = *s.pool;
  for (uint32_t id = 0; id < pool.capacity(); ++id) {
    const uint32_t refs = pool.refcount(id);
    if (refs == 1) ++r.active.pages;
    if (refs > 1) {
      ++r.shared.pages;
      r.shared_holders += refs;
    }
  }
  r.reserved.pages = pool.capacity();
  r.cached.pages = pool.cached_pages();
  r.free.pages = pool.free_pages();
  for (PageBytes* pb : {&r.reserved, &r.active, &r.shared, &r.cached, &r.free}) {
    pb->bytes = pb->pages * r.page_bytes;
  }
  r.touched_bytes = static_cast<uint64_t>(pool.touched()) * r.page_bytes;
  std::unordered_set<const Staging*> stagings;
  for (const auto& q : s.seqs) {
    if (!q) continue;
    ++r.sequences;
    r.tokens += q->tokens.size();
    r.tail_unused_slots +=
        q->pages.size() * static_cast<uint64_t>(r.page_tokens) - q->tokens.size();
    stagings.insert(q->staging.get());
    if (q->step && q->step->displaced_staging) stagings.insert(q->step->displaced_staging.get());
  }
  r.staging_bytes = stagings.size() * s.staging_floats * sizeof(float);
  r.counters = s.counters;
  r.counters.evictions = pool.evictions();
  r.counters.appended_tokens = s.appended_tokens.load(std::memory_order_relaxed);
  r.counters.append_ns = s.append_ns.load(std::memory_order_relaxed);
  r.counters.encoded_pages = s.encoded_pages.load(std::memory_order_relaxed);
  r.counters.encode_ns = s.encode_ns.load(std::memory_order_relaxed);
  return r;
}

double Residency::prefix_hit_rate() const {
  const uint64_t asked = counters.prefix_hit_tokens + counters.prefix_miss_tokens;
  return asked == 0 ? 0.0 : static_cast<double>(counters.prefix_hit_tokens) / asked;
}

std::string Residency::to_table() const {
  Table t({"pages", "count", "bytes", "share"});
  t.align_left(0);
  const auto row = [&](const char* name, const PageBytes& pb) {
    const double share = reserved.pages == 0 ? 0 : 100.0 * pb.pages / reserved.pages;
    t.add_row({name, std::to_string(pb.pages), format_bytes(static_cast<double>(pb.bytes)),
               fmt::format("{:.1f}%", share)});
  };
  row("reserved", reserved);
  t.add_separator();
  row("active", active);
  row("shared", shared);
  row("cached", cached);
  row("free", free);
  std::string out = fmt::format("kv cache residency (page: {} tokens, {} across all layers)\n",
                                page_tokens, format_bytes(static_cast<double>(page_bytes)));
  out += t.to_text();
  const uint64_t slots = (active.pages + shared.pages) * static_cast<uint64_t>(page_tokens);
  out += fmt::format(
      "shared pages have {} holders: sharing saves {}\n"
      "{} sequences, {} tokens; {} unused token slots in tail pages ({:.1f}% of held slots)\n"
      "staging (f32 tails, outside the arena): {}; arena touched: {}\n",
      shared_holders, format_bytes(static_cast<double>(shared_saved_bytes())), sequences, tokens,
      tail_unused_slots, slots == 0 ? 0.0 : 100.0 * tail_unused_slots / slots,
      format_bytes(static_cast<double>(staging_bytes)),
      format_bytes(static_cast<double>(touched_bytes)));
  const CacheCounters& c = counters;
  out += fmt::format(
      "prefix: {} tokens hit, {} missed ({:.1f}% hit rate); evictions {}; compactions {} ({} "
      "pages moved); copy-on-writes {}; released {}\n",
      c.prefix_hit_tokens, c.prefix_miss_tokens, 100.0 * prefix_hit_rate(), c.evictions,
      c.compactions, c.pages_moved, c.copy_on_writes,
      format_bytes(static_cast<double>(c.bytes_released)));
  return out;
}

std::string Residency::to_json(int indent) const {
  using nlohmann::ordered_json;
  const auto pb = [](const PageBytes& p) {
    return ordered_json{{"pages", p.pages}, {"bytes", p.bytes}};
  };
  const CacheCounters& c = counters;
  ordered_json j = {
      {"page_tokens", page_tokens},
      {"page_bytes", page_bytes},
      {"reserved", pb(reserved)},
      {"active", pb(active)},
      {"shared", pb(shared)},
      {"cached", pb(cached)},
      {"free", pb(free)},
      {"shared_holders", shared_holders},
      {"shared_saved_bytes", shared_saved_bytes()},
      {"touched_bytes", touched_bytes},
      {"sequences", sequences},
      {"tokens", tokens},
      {"tail_unused_slots", tail_unused_slots},
      {"staging_bytes", staging_bytes},
      {"counters",
       {{"prefix_hit_tokens", c.prefix_hit_tokens},
        {"prefix_miss_tokens", c.prefix_miss_tokens},
        {"prefix_hit_rate", prefix_hit_rate()},
        {"evictions", c.evictions},
        {"compactions", c.compactions},
        {"pages_moved", c.pages_moved},
        {"copy_on_writes", c.copy_on_writes},
        {"bytes_released", c.bytes_released},
        {"appended_tokens", c.appended_tokens},
        {"append_ns", c.append_ns},
        {"encoded_pages", c.encoded_pages},
        {"encode_ns", c.encode_ns}}},
  };
  return j.dump(indent);
}

// ---- diagnostics ----

int64_t Cache::n_tokens(SeqId seq) const {
  std::lock_guard lock(s_->pool_mutex);
  return static_cast<int64_t>(s_->seq(seq).tokens.size());
}

std::vector<int32_t> Cache::token_ids(SeqId seq) const {
  std::lock_guard lock(s_->pool_mutex);
  return s_->seq(seq).tokens;
}

std::vector<uint32_t> Cache::page_table(SeqId seq) const {
  std::shared_lock world(s_->world);
  std::lock_guard lock(s_->pool_mutex);
  return s_->seq(seq).pages;
}

PageInfo Cache::page_info(uint32_t page) const {
  std::lock_guard lock(s_->pool_mutex);
  if (page >= s_->pool->capacity()) fail("kv cache: page {} is outside the arena", page);
  return {s_->pool->refcount(page), s_->pool->hashed(page)};
}

void Cache::check_invariants() const {
  const State& s = *s_;
  std::unique_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  s.pool->check_invariants();
  const int64_t P = s.page_tokens();
  std::vector<uint32_t> holders(s.pool->capacity());
  std::map<const Staging*, long> staging_holders;
  for (const auto& q : s.seqs) {
    if (!q) continue;
    const int64_t n = static_cast<int64_t>(q->tokens.size());
    KVPACK_ASSERT(static_cast<int64_t>(q->pages.size()) == (n + P - 1) / P, "{} tokens in {} pages",
                  n, q->pages.size());
    uint32_t complete = UINT32_MAX;
    for (const LayerCursor& c : q->layers) {
      const int64_t tail = c.n - static_cast<int64_t>(c.encoded) * P;
      KVPACK_ASSERT(
          c.n <= n && tail >= 0 && tail < s.config.hp_window + P && c.start + tail <= s.tail_cap,
          "layer cursor n {} encoded {} start {} of {} tokens", c.n, c.encoded, c.start, n);
      complete = std::min(complete, c.encoded);
    }
    KVPACK_ASSERT(q->hashes.size() <= complete, "{} hashes, {} complete pages", q->hashes.size(),
                  complete);
    for (size_t p = 0; p < q->pages.size(); ++p) {
      const uint32_t id = q->pages[p];
      KVPACK_ASSERT(id < holders.size(), "page id {} outside the arena", id);
      ++holders[id];
      if (p < q->hashes.size() && s.pool->hashed(id)) {
        KVPACK_ASSERT(s.pool->hash(id) == q->hashes[p], "page {} holds another prefix", id);
      }
    }
    ++staging_holders[q->staging.get()];
    if (q->step) {  // an open step holds what it replaced
      for (const auto& [index, id] : q->step->displaced) {
        KVPACK_ASSERT(id < holders.size(), "displaced page id {} outside the arena", id);
        ++holders[id];
      }
      if (q->step->displaced_staging) ++staging_holders[q->step->displaced_staging.get()];
    }
  }
  for (uint32_t id = 0; id < holders.size(); ++id) {
    KVPACK_ASSERT(s.pool->refcount(id) == holders[id],
                  "page {}: refcount {}, {} page tables and steps", id, s.pool->refcount(id),
                  holders[id]);
  }
  for (const auto& q : s.seqs) {
    if (q) KVPACK_ASSERT(q->staging.use_count() == staging_holders[q->staging.get()], "staging");
  }
}

}  // namespace kvpack::cache
