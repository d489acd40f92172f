#include "serve/scheduler.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/error.h"

namespace kvpack::serve {

Scheduler::Scheduler(SchedulerConfig config, std::vector<cache::Cache*> pools)
    : config_(config), pools_(std::move(pools)) {
  if (config_.max_running < 1 || config_.prefill_chunk < 1 || config_.step_tokens < 1) {
    fail("serve: the running batch, the prefill chunk and the step's tokens must be at least 1");
  }
  if (pools_.empty()) fail("serve: the scheduler has no pool");
}

Scheduler::Id Scheduler::add(std::vector<int32_t> tokens, int pool, bool cache_prompt) {
  KVPACK_ASSERT(!tokens.empty());
  KVPACK_ASSERT(pool >= 0 && static_cast<size_t>(pool) < pools_.size());
  const Id id = next_id_++;
  Entry& e = entries_[id];
  e.id = id;
  e.pool = pool;
  e.cache_prompt = cache_prompt;
  e.tokens = std::move(tokens);
  waiting_.push_back(id);
  return id;
}

Scheduler::Entry& Scheduler::entry(Id id) {
  const auto it = entries_.find(id);
  KVPACK_ASSERT(it != entries_.end());
  return it->second;
}

const Scheduler::Entry& Scheduler::entry(Id id) const {
  const auto it = entries_.find(id);
  KVPACK_ASSERT(it != entries_.end());
  return it->second;
}

size_t Scheduler::running_in(int pool) const {
  return static_cast<size_t>(std::count_if(running_.begin(), running_.end(),
                                           [&](Id id) { return entry(id).pool == pool; }));
}

namespace {

// The pages a sequence of n tokens holds once computed, and one more per page group: each group
// (full attention, or one sliding window) takes its own pages from the arena, so a cache with
// sliding layers needs a page of every group per page of tokens, less what the window released.
int64_t pages_to_admit(const cache::Cache& cache, int64_t n) {
  const cache::PageLayout& layout = cache.layout();
  int64_t need = 0;
  for (size_t g = 0; g < layout.groups.size(); ++g) {
    need += n / layout.page_tokens - layout.first_held(g, n) + 1;
  }
  return need;
}

}  // namespace

// In arrival order while the batch has room. A request is admitted only when its pool's free
// and cached pages hold its tokens (or nothing else runs), so a preempted request does not come
// back to be preempted again in the next step.
std::vector<Scheduler::Id> Scheduler::admit() {
  std::vector<Id> admitted;
  std::vector<int64_t> room(pools_.size(), -1);  // pages free or evictable, per pool
  for (size_t i = 0; i < waiting_.size();) {
    if (running_.size() >= static_cast<size_t>(config_.max_running)) break;
    Entry& next = entry(waiting_[i]);
    if (waits_for_prefix(next)) {
      ++i;  // admitted once the running request has put the shared pages in the cache
      continue;
    }
    const size_t pi = static_cast<size_t>(next.pool);
    if (room[pi] < 0) {
      const cache::Residency res = pools_[pi]->residency();
      room[pi] = static_cast<int64_t>(res.free.pages + res.cached.pages);
    }
    const int64_t need = pages_to_admit(*pools_[pi], static_cast<int64_t>(next.tokens.size()));
    if (need > room[pi] && !running_.empty()) break;
    room[pi] -= need;
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(i));
    start(next);
    running_.push_back(next.id);
    admitted.push_back(next.id);
  }
  return admitted;
}

// True when a running request of the same pool is still computing whole pages this request's
// tokens begin with: admitting it now would compute them a second time, next to the first,
// instead of finding them in the prefix cache a few steps later (32 clients sharing a system
// prompt compute it once).
bool Scheduler::waits_for_prefix(const Entry& next) const {
  if (!next.cache_prompt) return false;
  const std::vector<int32_t>& t = next.tokens;
  const int64_t page_tokens = pools_[static_cast<size_t>(next.pool)]->config().page_tokens;
  for (const Id id : running_) {
    const Entry& r = entry(id);
    if (r.pool != next.pool || !r.cache_prompt) continue;
    const std::vector<int32_t>& u = r.tokens;
    const size_t n = std::min(t.size() - 1, u.size());
    const size_t common = static_cast<size_t>(
        std::mismatch(t.begin(), t.begin() + static_cast<ptrdiff_t>(n), u.begin()).first -
        t.begin());
    const int64_t shared_pages = static_cast<int64_t>(common) / page_tokens;
    if (shared_pages > 0 && r.computed < shared_pages * page_tokens) return true;
  }
  return false;
}

// A sequence for the request in its pool, starting with the cached whole pages of its tokens
// (all but the last, whose logits are needed) unless prompt caching is off.
void Scheduler::start(Entry& e) {
  cache::Cache& cache = *pools_[static_cast<size_t>(e.pool)];
  e.seq = cache.create();
  e.running = true;
  e.computed = 0;
  if (e.cache_prompt) {
    e.computed = cache.attach_prefix(e.seq, std::span(e.tokens).first(e.tokens.size() - 1));
  }
  e.order = next_order_++;
  ++stats_.admissions;
  stats_.recomputed_tokens += static_cast<uint64_t>(std::max<int64_t>(0, e.lost - e.computed));
  e.lost = 0;
  if (e.admitted_once) return;
  e.admitted_once = true;
  e.cached_tokens = e.computed;
}

// Each running request's next prefill chunk within the step's prompt-token budget, or its
// decode token.
std::vector<Scheduler::Rows> Scheduler::plan() const {
  std::vector<Rows> rows;
  int budget = config_.step_tokens;
  for (const Id id : running_) {
    const std::span<const int32_t> pending = entry(id).pending();
    if (pending.size() == 1) {
      rows.push_back({id, 1});
    } else if (budget > 0 && !pending.empty()) {
      const int n = std::min({static_cast<int>(std::min<size_t>(pending.size(), INT_MAX)),
                              config_.prefill_chunk, budget});
      budget -= n;
      rows.push_back({id, n});
    }
  }
  return rows;
}

bool Scheduler::computed(Id id, int n) {
  Entry& e = entry(id);
  KVPACK_ASSERT(e.running && n > 0 && static_cast<size_t>(n) <= e.pending().size());
  e.computed += n;
  return e.pending().empty();
}

void Scheduler::append(Id id, int32_t token) {
  entry(id).tokens.push_back(token);
}

Scheduler::Id Scheduler::preempt_newest(int pool) {
  auto newest = running_.end();
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (entry(*it).pool == pool &&
        (newest == running_.end() || entry(*newest).order < entry(*it).order)) {
      newest = it;
    }
  }
  KVPACK_ASSERT(newest != running_.end());
  Entry& e = entry(*newest);
  running_.erase(newest);
  pools_[static_cast<size_t>(e.pool)]->free(e.seq);
  e.running = false;
  e.lost = e.computed;
  e.computed = 0;
  ++e.preemptions;
  ++stats_.preemptions;
  waiting_.push_front(e.id);
  return e.id;
}

void Scheduler::finish(Id id) {
  Entry& e = entry(id);
  if (e.running) {
    pools_[static_cast<size_t>(e.pool)]->free(e.seq);
    std::erase(running_, id);
  } else {
    std::erase(waiting_, id);
  }
  entries_.erase(id);
}

std::vector<Scheduler::Id> step_without_model(Scheduler& s, const AppendRows& append_rows) {
  std::vector<Scheduler::Id> done;
  for (const Scheduler::Rows& row : s.plan()) {
    if (!s.entry(row.id).running) continue;  // preempted earlier in this step
    for (;;) {
      const Scheduler::Entry& e = s.entry(row.id);
      cache::Cache& cache = s.pool(e.pool);
      try {
        cache.add_tokens(e.seq, e.pending().first(static_cast<size_t>(row.n)));
      } catch (const Error& err) {
        if (std::strstr(err.what(), "kv cache full") == nullptr || s.running_in(e.pool) < 2) throw;
        if (s.preempt_newest(e.pool) == row.id) break;
        continue;
      }
      append_rows(cache, e.seq, row.n);
      if (s.computed(row.id, row.n)) done.push_back(row.id);
      break;
    }
  }
  return done;
}

}  // namespace kvpack::serve
