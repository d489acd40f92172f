// Truncation: dropping a sequence's last tokens, decoding a page the cut goes through back into
// the f32 tail, and taking back from the prefix index the pages a sliding window needs again.
#include <algorithm>
#include <mutex>

#include "base/error.h"
#include "cache/cache_state.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {

std::vector<Reacquire> Cache::State::reacquire(const Sequence& q, int64_t keep,
                                               int64_t encoded) const {
  std::vector<Reacquire> back;
  if (keep == 0) return back;
  for (size_t g = 0; g < n_groups(); ++g) {
    const GroupTable& t = q.groups[g];
    const auto need = static_cast<size_t>(std::min(layout.window_start(g, keep), encoded));
    const auto end =
        std::min(t.first, static_cast<size_t>((keep + page_tokens() - 1) / page_tokens()));
    for (size_t p = need; p < end; ++p) {
      const auto page = p < q.keys.size() ? pool->lookup(group_key(q.keys[p], g)) : std::nullopt;
      if (!page) {
        fail(
            "kv cache: cannot truncate sequence to {} tokens: its layers with a sliding window of "
            "{} released the page of tokens {}..{} and it is no longer cached; recompute the "
            "sequence instead (free it and prefill its tokens again)",
            keep, layout.groups[g].window, p * static_cast<size_t>(page_tokens()),
            (p + 1) * static_cast<size_t>(page_tokens()) - 1);
      }
      back.push_back({g, p, *page});
    }
  }
  return back;
}

void Cache::State::take_back(Sequence& q, const std::vector<Reacquire>& back) {
  for (const Reacquire& r : back) {
    pool->ref(r.page);
    GroupTable& t = q.groups[r.group];
    t.pages[r.index] = r.page;
    t.first = std::min(t.first, r.index);
  }
}

void Cache::truncate(SeqId id, int64_t n) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  const int64_t total = static_cast<int64_t>(q.tokens.size());
  if (n < 0 || n > total) {
    fail("kv cache: cannot drop {} tokens from sequence {} of {}", n, id, total);
  }
  if (!q.between_steps()) fail("kv cache: truncate of sequence {} in the middle of a step", id);
  if (n == 0) return;
  const int64_t P = s_->page_tokens();
  const int64_t keep = total - n;
  const int64_t encoded = q.layers[0].encoded;
  // Only staged tokens go (cut = -1), or the cut goes through encoded page `cut`, whose first
  // `rest` tokens return to the tail.
  const bool staged_only = keep >= encoded * P;
  const size_t cut = static_cast<size_t>(keep / P);
  const int rest = static_cast<int>(keep % P);
  std::shared_ptr<Staging> target;
  if (!staged_only && rest > 0) {
    // The old tail is dropped entirely, so a shared staging is replaced, not copied.
    std::unique_lock lock(s_->pool_mutex);
    const bool shared = q.staging.use_count() > 1;
    lock.unlock();
    target = shared ? std::make_shared<Staging>(s_->staging_floats) : q.staging;
  }
  std::unique_lock lock(s_->pool_mutex);
  // Sliding groups need the window of the token at `keep` back: released pages that are still
  // cached come back from the prefix index (in the same lock hold, so none is evicted between).
  s_->take_back(q, s_->reacquire(q, keep, staged_only ? encoded : static_cast<int64_t>(cut)));
  if (staged_only) {
    s_->release_all(q, static_cast<size_t>((keep + P - 1) / P));
    q.tokens.resize(static_cast<size_t>(keep));
    for (LayerCursor& c : q.layers) {
      c.n = keep;
      c.attend_from = std::min(c.attend_from, keep);
      if (keep == encoded * P) c.start = 0;
    }
  } else {
    if (target) {
      lock.unlock();
      s_->decode_into_staging(q, *target, cut, rest);
      lock.lock();
      q.staging = std::move(target);
    }
    s_->release_all(q, cut + (rest > 0 ? 1 : 0));
    q.tokens.resize(static_cast<size_t>(keep));
    q.keys.resize(std::min(q.keys.size(), cut));
    for (GroupTable& t : q.groups) t.registered = std::min(t.registered, cut);
    for (LayerCursor& c : q.layers) c = {keep, static_cast<uint32_t>(cut), 0, keep};
  }
  for (size_t g = 0; g < s_->n_groups(); ++g) s_->release_front(q, g, s_->first_needed(q, g));
}

}  // namespace kvpack::cache
