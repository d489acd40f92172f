// The engine in process on the probe model: concurrent jobs, interleaved step by step (prefill
// chunks beside decode tokens), each get exactly the tokens model::generate() gives them alone;
// a cancelled job's pages are freed; the queue bound and the prompt checks refuse with 4xx.
#include "serve/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "probe_model.h"

namespace kvpack::serve {
namespace {

using namespace std::chrono_literals;

std::vector<int32_t> prompt_of(const model::Model& m, const std::string& text) {
  return m.tokenizer()->encode(text, true, false);
}

// What generate() gives one job alone on a fresh cache.
std::string alone(const model::Model& m, const GenerationJob& job, int chunk) {
  ThreadPool pool(2);
  cache::Cache cache(m.cache_config(format::KVPolicy(), 1024));
  model::Forward fwd(m, cache, pool, {.max_chunk = chunk, .n_ctx = 1024});
  model::GenerationConfig g = job.generation;
  g.context = 1024;
  model::Session s(m.tokenizer(), g, job.prompt);
  model::generate(fwd, cache.create(), s);
  return s.text();
}

std::string collect(Job& job) {
  std::vector<std::string> pieces;
  while (!job.wait(pieces, 50ms)) {
  }
  std::string text;
  for (const std::string& p : pieces) text += p;
  return text;
}

TEST(Engine, InterleavedJobsMatchGenerateAlone) {
  KVPACK_PROBE_MODEL(path);
  const auto m = model::Model::load(path.string());
  EngineConfig c;
  c.context = 1024;
  c.max_running = 4;
  c.prefill_chunk = 16;  // long prompts take several steps, beside other jobs' decode tokens
  c.threads = 2;
  Engine engine(*m, c);
  std::vector<GenerationJob> jobs;
  for (int i = 0; i < 6; ++i) {
    GenerationJob j;
    std::string text = "Once upon a time there was a";
    for (int r = 0; r < i * 3; ++r) text += " little dog who liked to run";
    j.prompt = prompt_of(*m, text);
    j.generation.sampling.seed = static_cast<uint64_t>(100 + i);
    j.generation.max_tokens = 20 + 7 * i;
    j.cache_prompt = false;
    jobs.push_back(j);
  }
  std::vector<std::shared_ptr<Job>> submitted;
  for (const GenerationJob& j : jobs) submitted.push_back(engine.submit(j));
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(collect(*submitted[i]), alone(*m, jobs[i], 256)) << i;
    const JobOutcome& o = submitted[i]->outcome();
    EXPECT_EQ(o.completion_tokens, jobs[i].generation.max_tokens);
    EXPECT_EQ(o.prompt_tokens, static_cast<int64_t>(jobs[i].prompt.size()));
    EXPECT_TRUE(o.error.empty() && !o.aborted);
  }
  for (const PoolGauges& p : engine.pool_gauges()) {
    EXPECT_EQ(p.residency.active.pages + p.residency.shared.pages, 0u);
  }
  EXPECT_TRUE(engine.idle());
  // One batched forward pass per step, over several jobs' rows (four decode rows, or prefill
  // chunks beside them, most steps).
  const ServeCounters n = engine.metrics().counters();
  EXPECT_EQ(n.forward_batches, n.steps);
  EXPECT_GT(n.step_rows, 2 * n.steps);
}

TEST(Engine, CancelFreesAndRefusalsAre4xx) {
  KVPACK_PROBE_MODEL(path);
  const auto m = model::Model::load(path.string());
  EngineConfig c;
  c.context = 256;
  c.max_running = 1;
  c.max_waiting = 1;
  c.threads = 2;
  Engine engine(*m, c);
  GenerationJob long_job;
  long_job.prompt = prompt_of(*m, "Once upon a time");
  long_job.generation.ignore_eog = true;
  auto a = engine.submit(long_job);
  auto b = engine.submit(long_job);
  try {
    engine.submit(long_job);
    ADD_FAILURE() << "a third job fit in a batch of 1 and a queue of 1";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  std::vector<std::string> pieces;
  while (pieces.empty()) a->wait(pieces, 50ms);
  a->cancel();
  b->cancel();
  // wait() also returns (false) for a piece made before the engine saw the cancel.
  const auto ends = [&](Job& j) {
    for (int i = 0; i < 100; ++i) {
      if (j.wait(pieces, 50ms)) return true;
    }
    return false;
  };
  EXPECT_TRUE(ends(*a));
  EXPECT_TRUE(ends(*b));
  EXPECT_TRUE(a->outcome().aborted);
  for (int i = 0; i < 100 && !engine.idle(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(engine.idle());
  EXPECT_EQ(engine.pool_gauges()[0].residency.active.pages, 0u);

  GenerationJob bad = long_job;
  bad.prompt = std::vector<int32_t>(300, 5);  // longer than the context
  EXPECT_THROW(engine.submit(bad), RequestError);
  bad.prompt = {1, 99999};
  EXPECT_THROW(engine.submit(bad), RequestError);
  bad.prompt = {};
  EXPECT_THROW(engine.submit(bad), RequestError);
  engine.drain();
  try {
    engine.submit(long_job);
    ADD_FAILURE() << "a draining engine took a job";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 503);
  }
}

}  // namespace
}  // namespace kvpack::serve
