// serve::Scheduler on its own (no model): admission order, the step's token budget, chunked
// prefill, preemption of the newest request when the pool is full and its recompute, prefix
// reuse at admission, the pages admission counts and those finish() gives back. Rows are computed
// by step_without_model, which appends zero K/V.
#include "serve/scheduler.h"

#include <gtest/gtest.h>

#include <map>

namespace kvpack::serve {
namespace {

constexpr int kPageTokens = 16;
constexpr int kHeadDim = 32;

cache::CacheConfig small_cache(uint32_t pages) {
  cache::CacheConfig c;
  c.n_layers = 1;
  c.n_kv_heads = 1;
  c.head_dim_k = c.head_dim_v = kHeadDim;
  c.page_tokens = kPageTokens;
  c.n_pages = pages;
  c.salt = "scheduler test";
  return c;
}

// n tokens, distinct for distinct seeds (no shared first page).
std::vector<int32_t> tokens(int n, int seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = seed * 10000 + i;
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void append_zeros(cache::Cache& cache, cache::SeqId seq, int n) {
  const std::vector<float> zeros(static_cast<size_t>(n) * kHeadDim, 0.0f);
  cache.append(seq, 0, zeros.data(), zeros.data(), n);
}

// Admits, then computes the step's rows.
std::vector<Scheduler::Id> step(Scheduler& s) {
  s.admit();
  return step_without_model(s, append_zeros);
}

uint64_t held_pages(const cache::Cache& cache) {
  const cache::Residency r = cache.residency();
  return r.active.pages + r.shared.pages;
}

TEST(Scheduler, AdmitsInArrivalOrderWhileTheBatchHasRoom) {
  cache::Cache cache(small_cache(64));
  Scheduler s({.max_running = 2}, {&cache});
  const auto a = s.add(tokens(40, 1), 0);
  const auto b = s.add(tokens(40, 2), 0);
  const auto c = s.add(tokens(40, 3), 0);
  EXPECT_EQ(s.admit(), (std::vector<Scheduler::Id>{a, b}));
  EXPECT_EQ(s.waiting(), (std::deque<Scheduler::Id>{c}));
  EXPECT_TRUE(s.admit().empty());
  s.finish(a);
  EXPECT_EQ(s.admit(), (std::vector<Scheduler::Id>{c}));
  EXPECT_EQ(s.running(), (std::vector<Scheduler::Id>{b, c}));
}

// Admission counts the pages of every page group: with a sliding layer beside a full one, a
// 100-token request takes 7 pages of the full group and 3 of the sliding one (window 32), so a
// 16-page pool admits one such request at a time; with full layers only it holds two.
TEST(Scheduler, AdmissionCountsThePagesOfEveryPageGroup) {
  for (const bool sliding : {false, true}) {
    cache::CacheConfig c = small_cache(16);
    c.n_layers = 2;
    if (sliding) c.layer_window = {32, 0};
    cache::Cache cache(c);
    Scheduler s({.max_running = 4}, {&cache});
    const auto a = s.add(tokens(100, 1), 0);
    const auto b = s.add(tokens(100, 2), 0);
    const std::vector<Scheduler::Id> want =
        sliding ? std::vector<Scheduler::Id>{a} : std::vector<Scheduler::Id>{a, b};
    EXPECT_EQ(s.admit(), want) << sliding;
  }
}

TEST(Scheduler, PromptTokensPerStepStayWithinTheBudgetDecodeRowsDoNotCount) {
  cache::Cache cache(small_cache(256));
  Scheduler s({.max_running = 4, .prefill_chunk = 64, .step_tokens = 100}, {&cache});
  const auto d = s.add({7}, 0);  // one token pending: a decode row
  const auto a = s.add(tokens(200, 1), 0);
  const auto b = s.add(tokens(200, 2), 0);
  const auto c = s.add(tokens(200, 3), 0);
  s.admit();
  const std::vector<Scheduler::Rows> plan = s.plan();
  ASSERT_EQ(plan.size(), 3u);  // c gets nothing this step
  EXPECT_EQ(plan[0].id, d);
  EXPECT_EQ(plan[0].n, 1);
  EXPECT_EQ(plan[1].id, a);
  EXPECT_EQ(plan[1].n, 64);
  EXPECT_EQ(plan[2].id, b);
  EXPECT_EQ(plan[2].n, 36);
  const std::vector<Scheduler::Id> done = step_without_model(s, append_zeros);
  EXPECT_EQ(done, (std::vector<Scheduler::Id>{d}));
  EXPECT_EQ(s.entry(a).computed, 64);
  EXPECT_EQ(s.entry(b).computed, 36);
  EXPECT_EQ(s.entry(c).computed, 0);
}

TEST(Scheduler, LongPromptsArePrefilledInChunksThenDecoded) {
  cache::Cache cache(small_cache(64));
  Scheduler s({.max_running = 1, .prefill_chunk = 32, .step_tokens = 512}, {&cache});
  const auto a = s.add(tokens(100, 1), 0);
  std::vector<int64_t> computed;
  for (int i = 0; i < 4; ++i) {
    const std::vector<Scheduler::Id> done = step(s);
    computed.push_back(s.entry(a).computed);
    EXPECT_EQ(done.empty(), i < 3) << "step " << i;
  }
  EXPECT_EQ(computed, (std::vector<int64_t>{32, 64, 96, 100}));
  EXPECT_EQ(cache.residency().tokens, 100u);
  s.append(a, 5);
  const std::vector<Scheduler::Rows> plan = s.plan();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].n, 1);
}

// Two requests that each fit alone but not together: the newer is preempted (pages freed,
// first in the queue), the older goes on undisturbed, and the newer recomputes and completes
// once there is room.
TEST(Scheduler, AFullPoolPreemptsTheNewestWhichRecomputesLater) {
  cache::Cache cache(small_cache(10));
  Scheduler s({.max_running = 2}, {&cache});
  const auto a = s.add(tokens(40, 1), 0);
  const auto b = s.add(tokens(40, 2), 0);
  constexpr size_t kTotal = 100;  // 7 pages each
  std::map<Scheduler::Id, size_t> finished;
  bool saw_preemption = false;
  for (int guard = 0; guard < 1000 && finished.size() < 2; ++guard) {
    for (const auto id : step(s)) {
      Scheduler::Entry& e = s.entry(id);
      if (e.tokens.size() == kTotal) {
        finished[id] = e.tokens.size();
        s.finish(id);
      } else {
        s.append(id, static_cast<int32_t>(id * 1000 + e.tokens.size()));
      }
    }
    if (!saw_preemption && s.stats().preemptions > 0) {
      saw_preemption = true;
      EXPECT_EQ(s.running(), (std::vector<Scheduler::Id>{a}));
      ASSERT_FALSE(s.waiting().empty());
      EXPECT_EQ(s.waiting().front(), b);
      EXPECT_EQ(s.entry(b).computed, 0);
      EXPECT_FALSE(s.entry(b).running);
    }
  }
  EXPECT_TRUE(saw_preemption);
  EXPECT_EQ(finished.size(), 2u);
  EXPECT_EQ(finished[a], kTotal);
  EXPECT_EQ(finished[b], kTotal);
  EXPECT_GE(s.stats().preemptions, 1u);
  EXPECT_GT(s.stats().recomputed_tokens, 0u);  // b's tail, and what a's growth evicted
  EXPECT_EQ(held_pages(cache), 0u);
}

TEST(Scheduler, CachedPrefixPagesAreReusedAndCounted) {
  cache::Cache cache(small_cache(64));
  Scheduler s({.max_running = 4}, {&cache});
  const std::vector<int32_t> prompt = tokens(70, 1);  // 4 whole pages and 6 tokens
  // d computes the prompt; c, sharing its first pages, waits for them rather than computing
  // them beside it, then finds them cached.
  const auto d = s.add(concat(prompt, {1}), 0);
  const auto c = s.add(concat(prompt, {2, 3}), 0);
  const auto off = s.add(concat(prompt, {4}), 0, /*cache_prompt=*/false);
  EXPECT_EQ(s.admit(), (std::vector<Scheduler::Id>{d, off}));
  EXPECT_EQ(s.entry(d).cached_tokens, 0);
  step_without_model(s, append_zeros);
  EXPECT_EQ(s.entry(d).computed, 71);
  EXPECT_EQ(s.admit(), (std::vector<Scheduler::Id>{c}));
  EXPECT_EQ(s.entry(c).cached_tokens, 64);
  EXPECT_EQ(s.entry(c).computed, 64);
  EXPECT_EQ(s.entry(off).cached_tokens, 0);
  const std::vector<Scheduler::Rows> plan = s.plan();
  ASSERT_EQ(plan.size(), 1u);  // d and off are all computed: no rows until they sample
  EXPECT_EQ(plan[0].id, c);
  EXPECT_EQ(plan[0].n, 8);  // 72 tokens, 64 found
  EXPECT_EQ(cache.residency().counters.prefix_hit_tokens, 64u);
}

TEST(Scheduler, FinishingFreesTheSequencesPages) {
  cache::Cache cache(small_cache(16));
  Scheduler s({.max_running = 1}, {&cache});
  const auto a = s.add(tokens(40, 1), 0);
  const auto b = s.add(tokens(40, 2), 0);
  step(s);
  EXPECT_EQ(held_pages(cache), 3u);
  EXPECT_EQ(s.running(), (std::vector<Scheduler::Id>{a}));
  s.finish(b);  // still waiting: only leaves the queue
  EXPECT_TRUE(s.waiting().empty());
  EXPECT_EQ(held_pages(cache), 3u);
  s.finish(a);
  EXPECT_TRUE(s.empty());
  const cache::Residency r = cache.residency();
  EXPECT_EQ(r.active.pages + r.shared.pages, 0u);
  EXPECT_EQ(r.cached.pages, 2u);  // the whole pages stay for prefix reuse
  EXPECT_EQ(r.free.pages + r.cached.pages, 16u);
}

}  // namespace
}  // namespace kvpack::serve
