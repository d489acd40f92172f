// The serving engine (src/serve): one thread that owns the model's forward passes and the K/V
// page pools, fed by a bounded queue of jobs. Each step it drops cancelled jobs, admits waiting
// ones (reusing cached prefix pages), runs one prefill chunk or one decode token for every
// running job -- all of a pool's rows through one batched forward pass -- samples through each
// job's model::Session and hands the text to the job's waiter. Which jobs run and which of their
// tokens a step computes is serve::Scheduler's (scheduler.h, also what `kvpack bench cache`
// simulates): when a pool is full the cache first evicts cached pages; if that is not enough the
// newest running job is preempted (its pages freed, requeued first, its tokens recomputed later).
// docs/cli.md (`kvpack serve`) describes the behaviour as a client sees it.
//
//   Engine engine(model, config);
//   std::shared_ptr<Job> job = engine.submit(std::move(generation));  // throws RequestError
//   std::vector<std::string> pieces;
//   while (!job->wait(pieces, 100ms)) { ... }   // text pieces as they come; true when done
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/thread_pool.h"
#include "kvpack/model.h"
#include "model/session.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "serve/scheduler.h"

namespace kvpack::serve {

struct EngineConfig {
  std::vector<format::KVPolicy> policies = {format::KVPolicy()};  // one pool each; [0]: default
  int64_t context = 4096;   // longest request, prompt and generation
  int max_running = 4;      // jobs in the running batch (--parallel)
  int max_waiting = 64;     // jobs queued beyond it; more get 429
  int prefill_chunk = 256;  // prompt tokens of one job per step
  int step_tokens = 512;    // prompt tokens per step across jobs (decode rows come first)
  int page_tokens = 32;
  // Arena bytes across all pools (split evenly); 0: max_running full contexts per pool.
  uint64_t budget_bytes = 0;
  int threads = 0;  // the forward pass's pool (0: one per core)
};

// How a job ended, with OpenAI's usage and llama.cpp's timings.
struct JobOutcome {
  model::FinishReason reason = model::FinishReason::kNone;
  bool aborted = false;  // cancelled by its client or by the server's shutdown
  std::string error;     // non-empty: the engine failed it
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens reused from the prefix cache at admission
  int64_t completion_tokens = 0;
  int preemptions = 0;
  double prompt_ms = 0;     // admission to the first token
  double predicted_ms = 0;  // first to last token
  double queue_ms = 0;      // arrival to admission
};

// What a waiter submits: the prompt's ids and the generation rules.
struct GenerationJob {
  std::vector<int32_t> prompt;
  model::GenerationConfig generation;
  bool cache_prompt = true;
  int pool = 0;  // index into EngineConfig::policies
};

// One submitted job as its waiter sees it. Thread-safe.
class Job {
 public:
  // Waits up to `timeout` for news: appends the text pieces produced since the last call to
  // `pieces` and returns true once the job is done (outcome() is then set).
  bool wait(std::vector<std::string>& pieces, std::chrono::milliseconds timeout);
  // The client went away: the engine frees the job's pages at its next step.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  const JobOutcome& outcome() const { return outcome_; }  // after wait() returned true

 private:
  friend class Engine;
  void push(std::string text);
  void finish(JobOutcome outcome);

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> pieces_;
  bool done_ = false;
  JobOutcome outcome_;
  std::atomic<bool> cancelled_{false};
  std::function<void()> wake_engine_;
};

class Engine {
 public:
  Engine(const model::Model& model, EngineConfig config);
  ~Engine();  // aborts whatever is left and joins the engine thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a job. Throws RequestError: 400 for an empty prompt, a token outside the vocabulary
  // or a prompt longer than the context; 429 when the queue is full; 503 while draining.
  std::shared_ptr<Job> submit(GenerationJob job);

  // Refuses new jobs from now on; queued and running ones go on.
  void drain();
  bool draining() const { return draining_.load(); }
  // True when no job is queued or running.
  bool idle() const;
  // Ends every queued and running job as aborted and stops the engine thread.
  void stop();

  const EngineConfig& config() const { return config_; }
  const model::Model& model() const { return model_; }
  // The pool index of a K/V policy ("" = the default); -1 when no pool has it.
  int pool_of(const std::string& kv) const;
  std::vector<PoolGauges> pool_gauges() const;
  Metrics& metrics() { return metrics_; }

  struct Running;  // a job inside the engine (engine.cpp)
  struct Pool;

 private:
  using Id = Scheduler::Id;
  void loop();
  void step();
  void admit();
  void reap_cancelled();
  struct StepTally;
  bool run_rows();
  void run_pool(int pool, const std::vector<Scheduler::Rows>& plan, StepTally& tally);
  void computed(Id id, int n, std::span<const float> logits, StepTally& tally);
  void sample(Id id, std::span<const float> logits);
  void preempt_newest(int pool);
  void end(Id id, bool aborted, const std::string& error);
  void publish_gauges();

  const model::Model& model_;
  EngineConfig config_;
  ThreadPool pool_;
  std::vector<std::unique_ptr<Pool>> pools_;
  Metrics metrics_;

  mutable std::mutex mutex_;  // guards inbox_, active_, stop_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Running>> inbox_;  // submitted, not yet seen by the engine thread
  size_t active_ = 0;  // submitted and not ended (queued or running): the 429 bound
  bool stop_ = false;
  std::atomic<bool> draining_{false};

  // Engine thread only.
  std::unique_ptr<Scheduler> scheduler_;                   // the jobs' tokens, waiting and running
  std::unordered_map<Id, std::unique_ptr<Running>> jobs_;  // the rest of each scheduled job

  std::thread thread_;
};

}  // namespace kvpack::serve
