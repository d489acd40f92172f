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

// A job beside its scheduler entry (which holds its tokens, sequence and progress).
struct Engine::Running {
  std::shared_ptr<Job> job;
  GenerationJob spec;
  std::unique_ptr<model::Session> session;
  JobOutcome outcome;
  double t_arrival = 0, t_admitted = 0, t_first = 0, t_last = 0;
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
  std::vector<cache::Cache*> caches;
  for (const auto& p : pools_) caches.push_back(p->cache.get());
  scheduler_ = std::make_unique<Scheduler>(SchedulerConfig{.max_running = config_.max_running,
                                                           .prefill_chunk = config_.prefill_chunk,
                                                           .step_tokens = config_.step_tokens},
                                           std::move(caches));
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
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !scheduler_->empty(); });
      while (!inbox_.empty()) {
        std::unique_ptr<Running> r = std::move(inbox_.front());
        inbox_.pop_front();
        const Id id = scheduler_->add(r->session->tokens(), r->spec.pool, r->spec.cache_prompt);
        jobs_.emplace(id, std::move(r));
      }
      if (stop_) break;
    }
    step();
  }
  // Shutdown: whoever is still waiting gets an aborted outcome.
  std::vector<Id> left;
  for (const auto& [id, r] : jobs_) left.push_back(id);
  for (const Id id : left) end(id, /*aborted=*/true, "");
  publish_gauges();
}

void Engine::step() {
  reap_cancelled();
  admit();
  if (!scheduler_->running().empty()) run_rows();
  publish_gauges();
}

void Engine::reap_cancelled() {
  std::vector<Id> gone;
  for (const auto& [id, r] : jobs_) {
    if (r->job->cancelled()) gone.push_back(id);
  }
  for (const Id id : gone) end(id, /*aborted=*/true, "");
}

// The scheduler admits (scheduler.h); a job's first admission starts its clocks and counts its
// prompt and prefix hits.
void Engine::admit() {
  for (const Id id : scheduler_->admit()) {
    const Scheduler::Entry& e = scheduler_->entry(id);
    if (e.preemptions > 0) continue;  // readmitted
    Running& r = *jobs_.at(id);
    r.t_admitted = now_seconds();
    r.outcome.cached_tokens = e.cached_tokens;
    r.outcome.queue_ms = (r.t_admitted - r.t_arrival) * 1e3;
    const uint64_t asked = r.spec.cache_prompt ? e.tokens.size() - 1 : 0;
    const uint64_t hit = static_cast<uint64_t>(e.cached_tokens);
    metrics_.update([&](ServeCounters& c) {
      c.prompt_tokens += e.tokens.size();
      c.prefix_queries += asked;
      c.prefix_hits += hit;
    });
  }
}

// The newest running job of pool `pool` gives its pages back and waits first in the queue; it
// recomputes its tokens when readmitted.
void Engine::preempt_newest(int pool) {
  const Id id = scheduler_->preempt_newest(pool);
  ++jobs_.at(id)->outcome.preemptions;
  metrics_.update([](ServeCounters& c) { ++c.preemptions; });
}

// One forward pass per pool over every running job's rows of this step (model::Forward::
// eval_batch: the weights are streamed once for all of them), then sampling for the jobs whose
// tokens are all computed. A pool too full for the batch preempts its newest job and runs the
// rest; any other failure runs the jobs one by one, to fail only the one at fault.
bool Engine::run_rows() {
  const std::vector<Scheduler::Rows> plan = scheduler_->plan();
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

void Engine::run_pool(int pool, const std::vector<Scheduler::Rows>& plan, StepTally& tally) {
  Pool& p = *pools_[static_cast<size_t>(pool)];
  std::vector<Scheduler::Rows> jobs;  // the planned rows of this pool's running jobs
  std::vector<model::BatchItem> items;
  for (;;) {
    jobs.clear();
    items.clear();
    for (const Scheduler::Rows& row : plan) {
      if (!scheduler_->has(row.id)) continue;  // ended in this step
      const Scheduler::Entry& e = scheduler_->entry(row.id);
      if (!e.running || e.pool != pool) continue;  // preempted, or another pool's
      jobs.push_back(row);
      items.push_back({e.seq, e.pending().first(static_cast<size_t>(row.n))});
    }
    if (items.empty()) return;
    try {
      ++tally.batches;
      const std::span<const float> logits = p.forward->eval_batch(items);
      const size_t vocab = logits.size() / items.size();
      for (size_t k = 0; k < jobs.size(); ++k) {
        computed(jobs[k].id, jobs[k].n, logits.subspan(k * vocab, vocab), tally);
      }
      return;
    } catch (const Error& e) {
      if (is_cache_full(e) && scheduler_->running_in(pool) > 1) {
        preempt_newest(pool);
        continue;  // the batch without it
      }
      if (items.size() == 1) {
        end(jobs[0].id, /*aborted=*/false, e.what());
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
        end(jobs[k].id, /*aborted=*/false, e.what());
        continue;
      }
      computed(jobs[k].id, jobs[k].n, logits, tally);
    }
    return;
  }
}

// A job's n rows are in its sequence: counted, and sampled from when they were its last.
void Engine::computed(Id id, int n, std::span<const float> logits, StepTally& tally) {
  const Scheduler::Entry& e = scheduler_->entry(id);
  if (e.pending().size() == 1) {
    const cache::Cache& cache = *pools_[static_cast<size_t>(e.pool)]->cache;
    for (size_t g = 0; g < cache.layout().groups.size(); ++g) {
      tally.bytes.add(static_cast<size_t>(e.pool), cache.page_table(e.seq, static_cast<int>(g)));
    }
  }
  tally.rows += static_cast<uint64_t>(n);
  if (scheduler_->computed(id, n)) sample(id, logits);
}

// The next token of a job whose tokens are all in its sequence: sampled, timed, handed to the
// waiter and to the scheduler; the job ends when its session does.
void Engine::sample(Id id, std::span<const float> logits) {
  Running& r = *jobs_.at(id);
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
  if (step.finished) {
    end(id, /*aborted=*/false, "");
  } else {
    scheduler_->append(id, step.token);
  }
}

// Ends a job: the scheduler frees its sequence; the outcome is filled in and its waiter woken.
void Engine::end(Id id, bool aborted, const std::string& error) {
  const auto it = jobs_.find(id);
  KVPACK_ASSERT(it != jobs_.end());
  Running& r = *it->second;
  scheduler_->finish(id);
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
  jobs_.erase(it);
}

void Engine::publish_gauges() {
  const uint64_t running = scheduler_->running().size();
  size_t waiting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting = scheduler_->waiting().size() + inbox_.size();
  }
  metrics_.update([&](ServeCounters& c) {
    c.requests_running = running;
    c.requests_waiting = waiting;
  });
}

}  // namespace kvpack::serve
