// Prefix reuse: attach_prefix gives an empty sequence the longest run of cached pages that
// starts its tokens, per page group (a sliding group needs only its window's pages).
#include <algorithm>

#include "base/error.h"
#include "cache/cache_state.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {

namespace {

// The longest run of pages h <= keys.size() whose every group holds what a sequence of h pages
// needs: a full group pages [0, h), a sliding one pages [window_start(h P), h). found[g][p]
// is page p's page in group g (kNoPage when not cached).
size_t attachable(const PageLayout& layout, const std::vector<std::vector<uint32_t>>& found,
                  size_t full) {
  const auto P = static_cast<int64_t>(layout.page_tokens);
  size_t h = full;
  for (size_t g = 0; g < found.size(); ++g) {  // full groups: a prefix run
    if (layout.groups[g].window != 0) continue;
    size_t run = 0;
    while (run < h && found[g][run] != kNoPage) ++run;
    h = run;
  }
  for (; h > 0; --h) {
    bool ok = true;
    for (size_t g = 0; g < found.size() && ok; ++g) {
      if (layout.groups[g].window == 0) continue;
      const auto from = static_cast<size_t>(layout.window_start(g, static_cast<int64_t>(h) * P));
      for (size_t p = from; p < h && ok; ++p) ok = found[g][p] != kNoPage;
    }
    if (ok) break;
  }
  return h;
}

}  // namespace

int64_t Cache::attach_prefix(SeqId id, std::span<const int32_t> tokens) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.tokens.empty()) {
    fail("kv cache: attach_prefix needs an empty sequence; sequence {} has {} tokens", id,
         q.tokens.size());
  }
  const size_t P = static_cast<size_t>(s_->page_tokens());
  const size_t full = tokens.size() / P, G = s_->n_groups();
  std::vector<uint64_t> keys(full);  // the whole chain, hashed outside the lock
  for (size_t p = 0; p < full; ++p) {
    keys[p] = page_key(q.salt, p == 0 ? 0 : keys[p - 1], tokens.subspan(p * P, P));
  }
  std::vector<std::vector<uint32_t>> found(G, std::vector<uint32_t>(full, kNoPage));
  // Under the lock (residency() reads these vectors), before any change: these may throw.
  std::lock_guard lock(s_->pool_mutex);
  for (GroupTable& t : q.groups) t.pages.reserve(full);
  q.keys.reserve(full);
  q.tokens.reserve(full * P);
  for (size_t g = 0; g < G; ++g) {
    for (size_t p = 0; p < full; ++p) {
      const auto page = s_->pool->lookup(group_key(keys[p], g));
      if (page) {
        found[g][p] = *page;
      } else if (!s_->sliding(g)) {
        break;  // a full group needs a prefix run
      }
    }
  }
  const size_t hit = attachable(s_->layout, found, full);
  const auto n = static_cast<int64_t>(hit * P);
  for (size_t g = 0; g < G; ++g) {
    GroupTable& t = q.groups[g];
    t.first = static_cast<size_t>(s_->layout.window_start(g, n));
    t.pages.assign(hit, kNoPage);
    for (size_t p = t.first; p < hit; ++p) {
      s_->pool->ref(found[g][p]);
      t.pages[p] = found[g][p];
    }
    t.registered = hit;
  }
  q.keys.assign(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(hit));
  q.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(hit * P));
  for (LayerCursor& c : q.layers) c = {n, static_cast<uint32_t>(hit), 0, n};
  s_->counters.prefix_hit_tokens += hit * P;
  s_->counters.prefix_miss_tokens += tokens.size() - hit * P;
  return n;
}

}  // namespace kvpack::cache
