// Steps that can be undone: begin_step (add_tokens keeping a StepUndo), commit_step and
// rollback_step. A step's appends write only its own pages, its private copies of shared pages
// and staging, and staging rows after the step's start -- except when the rows wrap past the
// staging's end, which is when begin_step keeps a copy of the unencoded rows. So rollback_step
// restores the sequence exactly: token ids, page table, holders, cursors and f32 rows.
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

void Cache::begin_step(SeqId id, std::span<const int32_t> tokens) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.between_steps()) {
    fail("kv cache: begin_step on sequence {} in the middle of a step", id);
  }
  auto undo = std::make_unique<StepUndo>();
  std::lock_guard lock(s_->pool_mutex);
  s_->extend(q, tokens, undo.get());
  q.step = std::move(undo);
}

void Cache::commit_step(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.step) fail("kv cache: commit_step on sequence {} without a step", id);
  std::lock_guard lock(s_->pool_mutex);
  for (const auto& [index, page] : q.step->displaced) s_->pool->unref(page);
  q.step.reset();  // drops the displaced staging's holder
  s_->register_complete_pages(q);
}

void Cache::rollback_step(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.step) fail("kv cache: rollback_step on sequence {} without a step", id);
  StepUndo& u = *q.step;
  std::lock_guard lock(s_->pool_mutex);
  // The step's new pages were taken free (or evicted) and never hashed: they become free.
  s_->release_pages(q, u.n_pages);
  for (const auto& [index, page] : u.displaced) {
    s_->pool->unref(q.pages[index]);
    q.pages[index] = page;  // with the reference the record held
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
