// Steps that can be undone: begin_step (add_tokens keeping a StepUndo), commit_step and
// rollback_step. A step's appends write only its own pages, its private copies of shared pages
// and staging, and staging rows after the step's start -- except when the rows wrap past the
// staging's end, which is when begin_step keeps a copy of the unencoded rows. So rollback_step
// restores the sequence exactly: token ids, page table, holders, cursors and f32 rows.
#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "cache/cache_state.h"

namespace kvpack::cache {

void Cache::State::keep_tail_rows(const Sequence& q, size_t n_tokens, StepUndo& undo) const {
  // Layer rows are written from start + tail upward; they reach row tail_cap (and wrap or
  // rewind onto the kept rows) only if more tokens come than rows are left before it.
  bool wraps = false;
  size_t floats = 0;
  for_each_tail_run(q.layers, [&](size_t, size_t n) { floats += n; });
  for (const LayerCursor& c : q.layers) {
    const int64_t tail = c.n - static_cast<int64_t>(c.encoded) * page_tokens();
    wraps |= static_cast<int64_t>(n_tokens) > tail_cap - c.start - tail;
  }
  if (!wraps || floats == 0) return;
  undo.tail_rows.resize(floats);  // may throw: before anything changes
  const float* from = q.staging->data.get();
  float* to = undo.tail_rows.data();
  for_each_tail_run(q.layers, [&](size_t offset, size_t n) {
    std::memcpy(to, from + offset, n * sizeof(float));
    to += n;
  });
}

void Cache::begin_step(SeqId id, std::span<const int32_t> tokens, int chunk) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.between_steps()) {
    fail("kv cache: begin_step on sequence {} in the middle of a step", id);
  }
  if (chunk < 0) fail("kv cache: begin_step chunk {} must be >= 0 (0: none)", chunk);
  auto undo = std::make_unique<StepUndo>();
  std::lock_guard lock(s_->pool_mutex);
  s_->extend(q, tokens, undo.get(), chunk);
  q.step = std::move(undo);
}

void Cache::State::ring_recycle(Sequence& q, size_t g, size_t dead) {
  GroupUndo& u = q.step->groups[g];
  GroupTable& t = q.groups[g];
  for (const size_t end = std::min(dead, u.taken); u.ring_from < end; ++u.ring_from) {
    u.spares.push_back(t.pages[u.ring_from]);  // capacity reserved by begin_step
    t.pages[u.ring_from] = kNoPage;
  }
}

void Cache::State::ring_take(Sequence& q, size_t g, size_t end, int layer, int64_t attend_from) {
  GroupUndo& u = q.step->groups[g];
  GroupTable& t = q.groups[g];
  if (end > u.taken) {
    // Pages behind the window of every layer's first query not attended yet, and encoded by
    // every layer, are read by nothing until the step ends (rollback drops them anyway).
    int64_t pending = attend_from;
    uint32_t encoded = q.layers[layer].encoded;
    for (int l : layout.groups[g].layers) {
      if (l == layer) continue;
      pending = std::min(pending, q.layers[l].attend_from);
      encoded = std::min(encoded, q.layers[l].encoded);
    }
    const size_t dead =
        std::min<size_t>(static_cast<size_t>(layout.window_start(g, pending)), encoded);
    const size_t recyclable = dead > u.ring_from ? std::min(dead, u.taken) - u.ring_from : 0;
    if (end - u.taken > u.spares.size() + recyclable) {
      fail(
          "kv cache: layer {} runs ahead of its step's chunk of {} tokens: page {} of the step is "
          "still inside a window (append at most a chunk at a time, and attend to each chunk at "
          "every layer before appending the next)",
          layer, q.step->chunk, u.ring_from);
    }
    ring_recycle(q, g, dead);
    for (; u.taken < end; ++u.taken) {
      t.pages[u.taken] = u.spares.back();
      u.spares.pop_back();
    }
  }
  q.layers[layer].attend_from = attend_from;
}

void Cache::commit_step(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.step) fail("kv cache: commit_step on sequence {} without a step", id);
  if (!std::all_of(q.layers.begin(), q.layers.end(), [&](const LayerCursor& c) {
        return c.n == static_cast<int64_t>(q.tokens.size());
      })) {
    fail("kv cache: commit_step on sequence {} before every layer appended the step's tokens", id);
  }
  State& s = *s_;
  std::lock_guard lock(s.pool_mutex);
  for (size_t g = 0; g < s.n_groups(); ++g) {
    GroupUndo& u = q.step->groups[g];
    for (const auto& [index, page] : u.displaced) s.pool->unref(page);
    if (!u.ring) continue;
    // The ring's last pages (not encoded yet) take their ids from what is behind the window now.
    GroupTable& t = q.groups[g];
    s.ring_recycle(q, g, s.first_needed(q, g));
    KVPACK_ASSERT(t.pages.size() - u.taken <= u.spares.size(), "ring of {} spares for {} pages",
                  u.spares.size(), t.pages.size() - u.taken);
    for (; u.taken < t.pages.size(); ++u.taken) {
      t.pages[u.taken] = u.spares.back();
      u.spares.pop_back();
    }
    for (uint32_t page : u.spares) s.pool->unref(page);
  }
  q.step.reset();  // drops the displaced staging's holder
  s.register_complete_pages(q);
  for (size_t g = 0; g < s.n_groups(); ++g) {
    if (s.sliding(g)) s.release_front(q, g, s.first_needed(q, g));
  }
}

void Cache::rollback_step(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.step) fail("kv cache: rollback_step on sequence {} without a step", id);
  StepUndo& u = *q.step;
  std::lock_guard lock(s_->pool_mutex);
  for (size_t g = 0; g < s_->n_groups(); ++g) {
    // The step's new pages were taken free (or evicted) and never hashed: they become free.
    GroupUndo& gu = u.groups[g];
    s_->release_pages(q, g, gu.n_pages);
    for (uint32_t page : gu.spares) s_->pool->unref(page);
    for (const auto& [index, page] : gu.displaced) {
      s_->pool->unref(q.groups[g].pages[index]);
      q.groups[g].pages[index] = page;  // with the reference the record held
    }
  }
  q.tokens.resize(u.n_tokens);
  std::copy(u.layers.begin(), u.layers.end(), q.layers.begin());
  if (u.displaced_staging) {
    q.staging = std::move(u.displaced_staging);  // its rows were never written by the step
  } else if (!u.tail_rows.empty()) {
    const float* from = u.tail_rows.data();
    float* to = q.staging->data.get();
    s_->for_each_tail_run(q.layers, [&](size_t offset, size_t n) {
      std::memcpy(to + offset, from, n * sizeof(float));
      from += n;
    });
  }
  q.step.reset();
}

}  // namespace kvpack::cache
