#include "serve/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "base/error.h"
#include "base/timer.h"

namespace kvpack::serve {

// ---- Job: the waiter's side ----

bool Job::wait(std::vector<std::string>& pieces, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return done_ || !pieces_.empty(); });
  for (std::string& p : pieces_) pieces.push_back(std::move(p));
  pieces_.clear();
  return done_;
}

void Job::cancel() {
  if (cancelled_.exchange(true)) return;
  if (wake_engine_) wake_engine_();
}

void Job::push(std::string text) {
  if (text.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pieces_.push_back(std::move(text));
  }
  cv_.notify_all();
}

void Job::finish(JobOutcome outcome) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    outcome_ = std::move(outcome);
    done_ = true;
  }
  cv_.notify_all();
}

// ---- the engine's own state ----

struct Engine::Pool {
  format::KVPolicy policy;
  std::unique_ptr<cache::Cache> cache;
  std::unique_ptr<model::Forward> forward;
};

struct Engine::Running {
  std::shared_ptr<Job> job;
  GenerationJob spec;
  std::unique_ptr<model::Session> session;
  bool in_cache = false;
  cache::SeqId seq = 0;
  int64_t computed = 0;  // tokens of session->tokens() in the sequence
  uint64_t order = 0;    // admission order: the newest is preempted first
  bool admitted_once = false;
  JobOutcome outcome;
  double t_arrival = 0, t_admitted = 0, t_first = 0, t_last = 0;

  std::span<const int32_t> pending() const {
    return std::span<const int32_t>(session->tokens()).subspan(static_cast<size_t>(computed));
  }
};

namespace {

// The pages in the decode rows' page tables of one step, summed per sequence (what attention
// reading each sequence's page table on its own would stream) and as distinct pages (the floor
// shared-prefix attention approaches; what it did read is the backend's DecodeStats).
struct DecodeBytes {
  explicit DecodeBytes(size_t pools) : pages(pools, 0), unique(pools) {}
  void add(size_t pool, const std::vector<uint32_t>& table) {
    for (const uint32_t page : table) {
      if (page == cache::kNoPage) continue;  // released behind a sliding window
      ++pages[pool];
      unique[pool].insert(page);
    }
  }
  std::vector<uint64_t> pages;
  std::vector<std::unordered_set<uint32_t>> unique;
};

}  // namespace

// What one step computed: rows, and the decode rows' pages.
struct Engine::StepTally {
  explicit StepTally(size_t pools) : bytes(pools) {}
  uint64_t rows = 0;
  uint64_t batches = 0;  // eval_batch calls
  DecodeBytes bytes;
};

namespace {

bool is_cache_full(const Error& e) {
  return std::strstr(e.what(), "kv cache full") != nullptr;
}

}  // namespace

size_t Engine::live_running(int pool) const {
  return static_cast<size_t>(std::count_if(running_.begin(), running_.end(), [&](const auto& r) {
    return r != nullptr && (pool < 0 || r->spec.pool == pool);
  }));
}

Engine::Engine(const model::Model& model, EngineConfig config)
    : model_(model), config_(std::move(config)), pool_(config_.threads) {
  if (config_.policies.empty()) fail("serve: no K/V policy");
  if (config_.max_running < 1 || config_.max_waiting < 0 || config_.prefill_chunk < 1) {
    fail("serve: --parallel and --batch-size must be at least 1");
  }
  for (const format::KVPolicy& policy : config_.policies) {
    auto p = std::make_unique<Pool>();
    p->policy = policy;
    // n_pages: what one sequence of the full context needs (sliding groups hold their window).
    cache::CacheConfig c =
        model.cache_config(policy, config_.context, config_.page_tokens, config_.prefill_chunk);
    const int64_t context_pages = c.n_pages;
    if (config_.budget_bytes > 0) {
      c.n_pages = 0;
      c.budget_bytes = config_.budget_bytes / config_.policies.size();
    } else {
      c.n_pages = static_cast<uint32_t>(context_pages * config_.max_running);
    }
    p->cache = std::make_unique<cache::Cache>(c);
    if (p->cache->n_pages() < context_pages) {
      fail(
          "serve: the --kv-budget share of {} holds {} pages, less than one context of {} tokens "
          "({} pages)",
          policy.to_string(), p->cache->n_pages(), config_.context, context_pages);
    }
    p->forward = std::make_unique<model::Forward>(
        model, *p->cache, pool_,
        model::ForwardOptions{.max_chunk = config_.prefill_chunk, .n_ctx = config_.context});
    pools_.push_back(std::move(p));
  }
  publish_gauges();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  stop();
}

int Engine::pool_of(const std::string& kv) const {
  if (kv.empty()) return 0;
  const format::KVPolicy want = format::KVPolicy::parse(kv);
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i]->policy.to_string() == want.to_string()) return static_cast<int>(i);
  }
  return -1;
}

std::vector<PoolGauges> Engine::pool_gauges() const {
  std::vector<PoolGauges> out;
  for (const auto& p : pools_) out.push_back({p->policy.to_string(), p->cache->residency()});
  return out;
}

std::shared_ptr<Job> Engine::submit(GenerationJob spec) {
  const int64_t n = static_cast<int64_t>(spec.prompt.size());
  if (n == 0) bad_field("prompt", "the prompt has no tokens");
  if (n > config_.context) {
    bad_field("prompt", fmt::format("the prompt is {} tokens, longer than the context of {} tokens",
                                    n, config_.context));
  }
  for (int32_t id : spec.prompt) {
    if (id < 0 || id >= model_.spec().n_vocab) {
      bad_field("prompt", fmt::format("token id {} is outside the vocabulary of {} tokens", id,
                                      model_.spec().n_vocab));
    }
  }
  if (spec.pool < 0 || spec.pool >= static_cast<int>(pools_.size()))
    bad_field("kv", "no such pool");
  spec.generation.context = config_.context;
  auto r = std::make_unique<Running>();
  r->job = std::make_shared<Job>();
  r->job->wake_engine_ = [this] { cv_.notify_all(); };
  r->session = std::make_unique<model::Session>(model_.tokenizer(), spec.generation, spec.prompt);
  r->spec = std::move(spec);
  r->t_arrival = now_seconds();
  r->outcome.prompt_tokens = n;
  std::shared_ptr<Job> job = r->job;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_ || stop_) {
      metrics_.update([](ServeCounters& c) { ++c.rejected; });
      throw RequestError(503, "unavailable_error", "the server is shutting down");
    }
    // Jobs in the system (queued or running) beyond the batch are the queue.
    if (active_ >= static_cast<size_t>(config_.max_running + config_.max_waiting)) {
      metrics_.update([](ServeCounters& c) { ++c.rejected; });
      throw RequestError(429, "rate_limit_error",
                         fmt::format("the queue is full ({} requests running, {} waiting)",
                                     config_.max_running, config_.max_waiting));
    }
    ++active_;
    inbox_.push_back(std::move(r));
  }
  cv_.notify_all();
  return job;
}

void Engine::drain() {
  draining_ = true;
}

bool Engine::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return active_ == 0;
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock,
               [&] { return stop_ || !inbox_.empty() || !running_.empty() || !waiting_.empty(); });
      while (!inbox_.empty()) {
        waiting_.push_back(std::move(inbox_.front()));
        inbox_.pop_front();
      }
      if (stop_) break;
    }
    step();
  }
  // Shutdown: whoever is still waiting gets an aborted outcome.
  for (auto& r : running_) end(r, /*aborted=*/true, "");
  for (auto& r : waiting_) end(r, /*aborted=*/true, "");
  running_.clear();
  waiting_.clear();
  publish_gauges();
}

void Engine::step() {
  reap_cancelled();
  admit();
  if (!running_.empty()) run_rows();
  std::erase_if(running_, [](const std::unique_ptr<Running>& r) { return r == nullptr; });
  publish_gauges();
}

void Engine::reap_cancelled() {
  for (auto& r : running_) {
    if (r->job->cancelled()) end(r, /*aborted=*/true, "");
  }
  std::erase_if(running_, [](const std::unique_ptr<Running>& r) { return r == nullptr; });
  for (auto& r : waiting_) {
    if (r->job->cancelled()) end(r, /*aborted=*/true, "");
  }
  std::erase_if(waiting_, [](const std::unique_ptr<Running>& r) { return r == nullptr; });
}

// Moves waiting jobs into the running batch, in arrival order, while it has room. A job is admitted
// only when its pool's free and cached pages hold its tokens (or nothing else runs), so a preempted
// job does not come back to be preempted again in the next step.
void Engine::admit() {
  std::vector<int64_t> room(pools_.size(), -1);  // pages free or evictable, per pool
  for (size_t i = 0; i < waiting_.size();) {
    if (live_running() >= static_cast<size_t>(config_.max_running)) break;
    Running& next = *waiting_[i];
    if (waits_for_prefix(next)) {
      ++i;  // admitted once the running job has put the shared pages in the cache
      continue;
    }
    const size_t pi = static_cast<size_t>(next.spec.pool);
    if (room[pi] < 0) {
      const cache::Residency res = pools_[pi]->cache->residency();
      room[pi] = static_cast<int64_t>(res.free.pages + res.cached.pages);
    }
    const int64_t need =
        static_cast<int64_t>(next.session->tokens().size()) / config_.page_tokens + 1;
    if (need > room[pi] && live_running() > 0) break;
    room[pi] -= need;
    std::unique_ptr<Running> r = std::move(waiting_[i]);
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(i));
    start(*r);
    running_.push_back(std::move(r));
  }
}

// True when a running job of the same pool is still computing whole pages this job's tokens
// begin with: admitting it now would compute them a second time, next to the first, instead of
// finding them in the prefix cache a few steps later (32 clients sharing a system prompt
// compute it once).
bool Engine::waits_for_prefix(const Running& next) const {
  if (!next.spec.cache_prompt) return false;
  const std::vector<int32_t>& t = next.session->tokens();
  for (const auto& r : running_) {
    if (r == nullptr || r->spec.pool != next.spec.pool || !r->spec.cache_prompt) continue;
    const std::vector<int32_t>& u = r->session->tokens();
    const size_t n = std::min(t.size() - 1, u.size());
    const size_t common = static_cast<size_t>(
        std::mismatch(t.begin(), t.begin() + static_cast<ptrdiff_t>(n), u.begin()).first -
        t.begin());
    const int64_t shared_pages = static_cast<int64_t>(common) / config_.page_tokens;
    if (shared_pages > 0 && r->computed < shared_pages * config_.page_tokens) return true;
  }
  return false;
}

// A sequence for the job in its pool, starting with the cached whole pages of its tokens (all
// but the last, whose logits are needed) unless the request turned prompt caching off.
void Engine::start(Running& r) {
  cache::Cache& cache = *pools_[static_cast<size_t>(r.spec.pool)]->cache;
  r.seq = cache.create();
  r.in_cache = true;
  const std::vector<int32_t>& tokens = r.session->tokens();
  r.computed = 0;
  if (r.spec.cache_prompt) {
    r.computed = cache.attach_prefix(r.seq, std::span(tokens).first(tokens.size() - 1));
  }
  r.order = next_order_++;
  if (r.admitted_once) return;
  r.admitted_once = true;
  r.t_admitted = now_seconds();
  r.outcome.cached_tokens = r.computed;
  r.outcome.queue_ms = (r.t_admitted - r.t_arrival) * 1e3;
  const uint64_t asked = r.spec.cache_prompt ? tokens.size() - 1 : 0;
  const uint64_t hit = static_cast<uint64_t>(r.computed);
  metrics_.update([&](ServeCounters& c) {
    c.prompt_tokens += tokens.size();
    c.prefix_queries += asked;
    c.prefix_hits += hit;
  });
}

// Frees the pages of the newest running job of pool `pool` and puts it first in the queue; it
// recomputes its tokens when readmitted.
void Engine::preempt_newest(int pool) {
  std::unique_ptr<Running>* newest = nullptr;
  for (auto& r : running_) {
    if (r != nullptr && r->spec.pool == pool &&
        (newest == nullptr || (*newest)->order < r->order)) {
      newest = &r;
    }
  }
  KVPACK_ASSERT(newest != nullptr);
  Running& r = **newest;
  pools_[static_cast<size_t>(r.spec.pool)]->cache->free(r.seq);
  r.in_cache = false;
  r.computed = 0;
  ++r.outcome.preemptions;
  metrics_.update([](ServeCounters& c) { ++c.preemptions; });
  waiting_.push_front(std::move(*newest));
}

// The rows of this step per running job (0: none): its next prefill chunk within the step's
// prompt-token budget, or its decode token.
std::vector<int> Engine::plan_rows() const {
  std::vector<int> rows(running_.size(), 0);
  int budget = config_.step_tokens;
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i] == nullptr) continue;
    const std::span<const int32_t> pending = running_[i]->pending();
    if (pending.size() == 1) {
      rows[i] = 1;
    } else if (budget > 0) {
      rows[i] = std::min({static_cast<int>(std::min<size_t>(pending.size(), INT32_MAX)),
                          config_.prefill_chunk, budget});
      budget -= rows[i];
    }
  }
  return rows;
}

// One forward pass per pool over every running job's rows of this step (model::Forward::
// eval_batch: the weights are streamed once for all of them), then sampling for the jobs whose
// tokens are all computed. A pool too full for the batch preempts its newest job and runs the
// rest; any other failure runs the jobs one by one, to fail only the one at fault.
bool Engine::run_rows() {
  const std::vector<int> plan = plan_rows();
  StepTally tally(pools_.size());
  // What attention read this step: the backends count every decode call.
  uint64_t read_before = 0;
  for (const auto& p : pools_) read_before += p->forward->attention().decode_stats().bytes;
  for (size_t p = 0; p < pools_.size(); ++p) run_pool(static_cast<int>(p), plan, tally);
  uint64_t naive = 0, unique = 0, read = 0;
  for (size_t p = 0; p < pools_.size(); ++p) {
    naive += tally.bytes.pages[p] * pools_[p]->cache->page_bytes();
    unique += tally.bytes.unique[p].size() * pools_[p]->cache->page_bytes();
    read += pools_[p]->forward->attention().decode_stats().bytes;
  }
  read -= read_before;
  metrics_.update([&](ServeCounters& c) {
    ++c.steps;
    c.step_rows += tally.rows;
    c.forward_batches += tally.batches;
    c.decode_page_bytes += naive;
    c.decode_unique_page_bytes += unique;
    c.decode_read_bytes += read;
  });
  return tally.rows > 0;
}

void Engine::run_pool(int pool, const std::vector<int>& plan, StepTally& tally) {
  Pool& p = *pools_[static_cast<size_t>(pool)];
  std::vector<size_t> jobs;  // indices into running_
  std::vector<model::BatchItem> items;
  for (;;) {
    jobs.clear();
    items.clear();
    for (size_t i = 0; i < running_.size(); ++i) {
      if (running_[i] == nullptr || running_[i]->spec.pool != pool || plan[i] == 0) continue;
      jobs.push_back(i);
      items.push_back(
          {running_[i]->seq, running_[i]->pending().first(static_cast<size_t>(plan[i]))});
    }
    if (items.empty()) return;
    try {
      ++tally.batches;
      const std::span<const float> logits = p.forward->eval_batch(items);
      const size_t vocab = logits.size() / items.size();
      for (size_t k = 0; k < jobs.size(); ++k) {
        computed(jobs[k], plan[jobs[k]], logits.subspan(k * vocab, vocab), tally);
      }
      return;
    } catch (const Error& e) {
      if (is_cache_full(e) && live_running(pool) > 1) {
        preempt_newest(pool);
        continue;  // the batch without it
      }
      if (items.size() == 1) {
        end(running_[jobs[0]], /*aborted=*/false, e.what());
        return;
      }
    }
    // Each job alone: the one at fault fails, the others go on.
    for (size_t k = 0; k < jobs.size(); ++k) {
      std::span<const float> logits;
      try {
        ++tally.batches;
        logits = p.forward->eval(items[k].seq, items[k].tokens);
      } catch (const Error& e) {
        end(running_[jobs[k]], /*aborted=*/false, e.what());
        continue;
      }
      computed(jobs[k], plan[jobs[k]], logits, tally);
    }
    return;
  }
}

// Job i's n rows are in its sequence: counted, and sampled from when they were its last.
void Engine::computed(size_t i, int n, std::span<const float> logits, StepTally& tally) {
  Running& r = *running_[i];
  if (r.pending().size() == 1) {
    const cache::Cache& cache = *pools_[static_cast<size_t>(r.spec.pool)]->cache;
    for (size_t g = 0; g < cache.layout().groups.size(); ++g) {
      tally.bytes.add(static_cast<size_t>(r.spec.pool),
                      cache.page_table(r.seq, static_cast<int>(g)));
    }
  }
  tally.rows += static_cast<uint64_t>(n);
  r.computed += n;
  if (r.computed == static_cast<int64_t>(r.session->tokens().size())) sample(running_[i], logits);
}

// The next token of a job whose tokens are all in its sequence: sampled, timed, handed to the
// waiter; the job ends when its session does.
void Engine::sample(std::unique_ptr<Running>& slot, std::span<const float> logits) {
  Running& r = *slot;
  const model::SessionStep step = r.session->next(logits);
  const double now = now_seconds();
  if (r.t_first == 0) {
    r.t_first = now;
    metrics_.observe_ttft(now - r.t_arrival);
  } else {
    metrics_.observe_itl(now - r.t_last);
  }
  r.t_last = now;
  metrics_.update([](ServeCounters& c) { ++c.generation_tokens; });
  r.job->push(step.text);
  if (step.finished) end(slot, /*aborted=*/false, "");
}

// Ends a job: frees its sequence, fills in the outcome, wakes its waiter and clears the slot.
void Engine::end(std::unique_ptr<Running>& slot, bool aborted, const std::string& error) {
  Running& r = *slot;
  if (r.in_cache) pools_[static_cast<size_t>(r.spec.pool)]->cache->free(r.seq);
  JobOutcome o = r.outcome;
  o.reason = r.session->finish_reason();
  o.aborted = aborted;
  o.error = error;
  o.completion_tokens = r.session->n_sampled();
  if (r.t_first > 0) {
    o.prompt_ms = (r.t_first - r.t_admitted) * 1e3;
    o.predicted_ms = (r.t_last - r.t_first) * 1e3;
    metrics_.observe_e2e(r.t_last - r.t_arrival);
  }
  metrics_.update([&](ServeCounters& c) {
    if (!error.empty()) {
      ++c.finished_error;
    } else if (aborted) {
      ++c.finished_aborted;
    } else if (o.reason == model::FinishReason::kStop) {
      ++c.finished_stop;
    } else {
      ++c.finished_length;
    }
  });
  {
    // Before the waiter hears of it: a waiter that saw its job end finds the engine idle.
    std::lock_guard<std::mutex> lock(mutex_);
    --active_;
  }
  r.job->finish(std::move(o));
  slot.reset();
}

void Engine::publish_gauges() {
  const uint64_t running = live_running();
  size_t waiting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting = waiting_.size() + inbox_.size();
  }
  metrics_.update([&](ServeCounters& c) {
    c.requests_running = running;
    c.requests_waiting = waiting;
  });
}

}  // namespace kvpack::serve
