// The serving scheduler (src/serve): which requests run, and which of their tokens each step
// computes. No model inside: the engine runs the model's forward pass over the planned rows and
// `kvpack bench cache` appends random K/V for them, so both follow one policy.
//
// Policy: requests are admitted in arrival order while the running batch has room and the
// request's pool holds its tokens (free or evictable pages); a request whose prompt begins with
// whole pages another running request is still computing waits for them to be cached. Each step
// gives every running request either its decode token or its next prefill chunk (at most
// `prefill_chunk` tokens, at most `step_tokens` prompt tokens across requests; decode rows do
// not count). When a pool is full the cache first evicts cached pages; if that is not enough the
// caller preempts the newest running request of the pool: its pages are freed and it is queued
// first, to recompute its tokens (less what the prefix cache still holds) when readmitted.
//
//   Scheduler s(config, {&cache});
//   const Scheduler::Id id = s.add(prompt, /*pool=*/0, /*cache_prompt=*/true);
//   for (;;) {
//     s.admit();
//     for (const Scheduler::Rows& r : s.plan()) { compute r.n tokens of r.id; s.computed(r.id,
//     r.n); }
//     ... s.append(id, sampled) when s.entry(id).pending().empty(); s.finish(id) at the end
//   }
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kvpack/cache.h"

namespace kvpack::serve {

struct SchedulerConfig {
  int max_running = 4;      // requests in the running batch
  int prefill_chunk = 256;  // prompt tokens of one request per step
  int step_tokens = 512;    // prompt tokens per step across requests (decode rows come first)
};

// Counters since construction.
struct SchedulerStats {
  uint64_t admissions = 0;  // first admissions and readmissions after preemption
  uint64_t preemptions = 0;
  uint64_t recomputed_tokens = 0;  // tokens computed again after a preemption
};

class Scheduler {
 public:
  using Id = uint64_t;

  // One request: its tokens (prompt, then what was sampled) and how far its sequence holds them.
  struct Entry {
    Id id = 0;
    int pool = 0;
    bool cache_prompt = true;
    std::vector<int32_t> tokens;
    bool running = false;
    cache::SeqId seq = 0;  // while running
    int64_t computed = 0;  // tokens in the sequence
    uint64_t order = 0;    // admission order: the newest is preempted first
    bool admitted_once = false;
    int64_t cached_tokens = 0;  // found in the prefix cache at the first admission
    int preemptions = 0;
    int64_t lost = 0;  // tokens the last preemption dropped (counted as recomputed when redone)

    std::span<const int32_t> pending() const {
      return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(computed));
    }
  };

  // One running request's rows of a step: its next n pending tokens.
  struct Rows {
    Id id = 0;
    int n = 0;
  };

  // One cache per pool; they outlive the scheduler.
  Scheduler(SchedulerConfig config, std::vector<cache::Cache*> pools);

  // Queues a request (at the back). Its tokens must not be empty.
  Id add(std::vector<int32_t> tokens, int pool, bool cache_prompt = true);
  // Moves waiting requests into the running batch (policy above); returns those admitted now.
  std::vector<Id> admit();
  // This step's rows, running requests in admission order (those without rows left out).
  std::vector<Rows> plan() const;
  // n pending tokens of a running request are now in its sequence; true when none is pending.
  bool computed(Id id, int n);
  // A sampled token: pending, computed next step.
  void append(Id id, int32_t token);
  // Frees the pages of the newest running request of `pool` and queues it first. Returns its id.
  Id preempt_newest(int pool);
  // Ends a request, running or waiting: its sequence is freed (hashed pages stay cached).
  void finish(Id id);

  Entry& entry(Id id);
  const Entry& entry(Id id) const;
  bool has(Id id) const { return entries_.count(id) != 0; }
  const std::vector<Id>& running() const { return running_; }  // admission order
  const std::deque<Id>& waiting() const { return waiting_; }
  size_t running_in(int pool) const;
  bool empty() const { return entries_.empty(); }
  const SchedulerStats& stats() const { return stats_; }
  const SchedulerConfig& config() const { return config_; }
  cache::Cache& pool(int i) const { return *pools_[static_cast<size_t>(i)]; }

 private:
  bool waits_for_prefix(const Entry& next) const;
  void start(Entry& e);

  SchedulerConfig config_;
  std::vector<cache::Cache*> pools_;
  std::unordered_map<Id, Entry> entries_;
  std::deque<Id> waiting_;
  std::vector<Id> running_;
  Id next_id_ = 1;
  uint64_t next_order_ = 0;
  SchedulerStats stats_;
};

// One step without a model, for simulations and tests: each planned row's tokens are added to
// its sequence and `append_rows(cache, seq, n)` appends every layer's K/V for the n new tokens.
// A full pool preempts its newest running request, as the engine does (the running requests
// are in admission order, so the newest has not computed this step's rows yet); a request alone
// in a full pool throws the cache's error. Returns the requests whose tokens are all computed
// (the engine would sample them now).
using AppendRows = std::function<void(cache::Cache& cache, cache::SeqId seq, int n)>;
std::vector<Scheduler::Id> step_without_model(Scheduler& s, const AppendRows& append_rows);

}  // namespace kvpack::serve
