// Diagnostics for tests and inspection: token ids, page tables, page states and the invariant
// check over every sequence (docs/cache.md, "Invariants").
#include <algorithm>
#include <map>

#include "base/error.h"
#include "cache/cache_state.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {

int64_t Cache::n_tokens(SeqId seq) const {
  std::lock_guard lock(s_->pool_mutex);
  return static_cast<int64_t>(s_->seq(seq).tokens.size());
}

std::vector<int32_t> Cache::token_ids(SeqId seq) const {
  std::lock_guard lock(s_->pool_mutex);
  return s_->seq(seq).tokens;
}

std::vector<uint32_t> Cache::page_table(SeqId seq, int group) const {
  std::shared_lock world(s_->world);
  std::lock_guard lock(s_->pool_mutex);
  if (group < 0 || static_cast<size_t>(group) >= s_->n_groups()) {
    fail("kv cache: page group {} is outside 0..{}", group, s_->n_groups() - 1);
  }
  return s_->seq(seq).groups[static_cast<size_t>(group)].pages;
}

PageInfo Cache::page_info(uint32_t page) const {
  std::lock_guard lock(s_->pool_mutex);
  if (page >= s_->pool->capacity()) fail("kv cache: page {} is outside the arena", page);
  return {s_->pool->refcount(page), s_->pool->hashed(page)};
}

namespace {

// Checks one sequence's layer cursors.
void check_cursors(const Cache::State& s, const Sequence& q) {
  const int64_t P = s.page_tokens(), n = static_cast<int64_t>(q.tokens.size());
  for (const LayerCursor& c : q.layers) {
    const int64_t tail = c.n - static_cast<int64_t>(c.encoded) * P;
    KVPACK_ASSERT(
        c.n <= n && tail >= 0 && tail < s.config.hp_window + P && c.start + tail <= s.tail_cap,
        "layer cursor n {} encoded {} start {} of {} tokens", c.n, c.encoded, c.start, n);
    KVPACK_ASSERT(c.attend_from <= c.n, "attend_from {} past {} tokens", c.attend_from, c.n);
  }
}

// Whether entry p of group g's table may read kNoPage inside the sequence's open step: a ring's
// recycled pages and the ones it has not taken yet.
bool ring_gap(const Sequence& q, size_t g, size_t p) {
  if (!q.step || !q.step->groups[g].ring) return false;
  const GroupUndo& u = q.step->groups[g];
  return (p >= u.n_pages && p < u.ring_from) || p >= u.taken;
}

}  // namespace

void Cache::check_invariants() const {
  const State& s = *s_;
  std::unique_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  s.pool->check_invariants();
  const int64_t P = s.page_tokens();
  std::vector<uint32_t> holders(s.pool->capacity());
  std::map<const Staging*, long> staging_holders;
  const auto hold = [&](uint32_t id, size_t g, const char* what) {
    KVPACK_ASSERT(id < holders.size(), "{} page id {} outside the arena", what, id);
    KVPACK_ASSERT(s.page_group[id] == g, "{} page {} of group {} is marked group {}", what, id, g,
                  s.page_group[id]);
    ++holders[id];
  };
  for (const auto& q : s.seqs) {
    if (!q) continue;
    const int64_t n = static_cast<int64_t>(q->tokens.size());
    check_cursors(s, *q);
    for (size_t g = 0; g < s.n_groups(); ++g) {
      const GroupTable& t = q->groups[g];
      KVPACK_ASSERT(static_cast<int64_t>(t.pages.size()) == (n + P - 1) / P,
                    "{} tokens in {} pages (group {})", n, t.pages.size(), g);
      KVPACK_ASSERT(t.first <= t.pages.size() && t.registered <= s.group_encoded(*q, g) &&
                        t.registered <= q->keys.size(),
                    "group {}: first {}, registered {}, {} keys, {} encoded", g, t.first,
                    t.registered, q->keys.size(), s.group_encoded(*q, g));
      if (!q->step) {  // the group holds what its window still needs
        KVPACK_ASSERT(t.first <= s.first_needed(*q, g), "group {} released page {} it needs", g,
                      s.first_needed(*q, g));
      }
      for (size_t p = 0; p < t.pages.size(); ++p) {
        const uint32_t id = t.pages[p];
        if (p < t.first) {
          KVPACK_ASSERT(id == kNoPage, "group {} still names released page {}", g, p);
          continue;
        }
        if (id == kNoPage) {
          KVPACK_ASSERT(ring_gap(*q, g, p), "group {} page {} missing", g, p);
          continue;
        }
        hold(id, g, "table");
        if (p < t.registered && s.pool->hashed(id)) {
          KVPACK_ASSERT(s.pool->hash(id) == group_key(q->keys[p], g),
                        "page {} holds another prefix", id);
        }
      }
    }
    ++staging_holders[q->staging.get()];
    if (q->step) {  // an open step holds what it replaced and its ring's spares
      for (size_t g = 0; g < s.n_groups(); ++g) {
        for (const auto& [index, id] : q->step->groups[g].displaced) hold(id, g, "displaced");
        for (uint32_t id : q->step->groups[g].spares) hold(id, g, "spare");
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
