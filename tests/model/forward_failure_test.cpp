// A forward pass that fails partway -- the trace callback throwing at any step, a broken model's
// non-finite K, a full cache -- leaves its sequence exactly as before: the same token ids, page
// table and residency, and a later eval gives bit for bit what it gives without the failure.
// K/V in q8 so that a tail decoded back from pages (instead of restored) would show.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "error_of.h"
#include "kvpack/model.h"
#include "model/synthetic_model.h"
#include "poisoned_weights.h"

namespace kvpack::model {
namespace {

using kvpack::testing::error_of;

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

// Named after the test too: CTest runs tests in parallel processes, and rewriting a file that
// another one has mapped would pull its pages away.
std::string write_model(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path =
      fmt::format("{}/forward_failure_{}_{}.gguf", ::testing::TempDir(),
                  ::testing::UnitTest::GetInstance()->current_test_info()->name(), name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::vector<int32_t> ids(int n, int first) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back((first + 7 * i) % 64);
  return out;
}

// What a failed eval must not change: the sequence and every page's state (counters and the
// touched and peak high-water marks count work done, so they are left out).
std::string state_of(const cache::Cache& cache, cache::SeqId seq) {
  cache::Residency r = cache.residency();
  r.counters = {};
  r.touched_bytes = 0;
  r.peak = {};  // the most pages held at once: a high-water mark too
  return fmt::format("{} ids {} pages {}", r.to_json(-1), fmt::join(cache.token_ids(seq), " "),
                     fmt::join(cache.page_table(seq), " "));
}

// One model and cache; the trace callback throws at a chosen tensor once armed.
struct Session {
  explicit Session(const std::string& path, int64_t context = 256)
      : model(Model::load(path)),
        pool(2),
        cache(model->cache_config(format::KVPolicy::parse("k=q8,v=q8"), context, 16)),
        fwd(*model, cache, pool,
            {.max_chunk = 8,
             .trace =
                 [this](const TraceTensor& t) {
                   if (t.name == fail_at && t.pos >= fail_from) {
                     fail_at.clear();
                     throw Error(fmt::format("injected failure at {}", t.name));
                   }
                 }}),
        seq(cache.create()) {}

  std::vector<float> eval(const std::vector<int32_t>& tokens) {
    const std::span<const float> l = fwd.eval(seq, tokens);
    return {l.begin(), l.end()};
  }

  std::unique_ptr<Model> model;
  ThreadPool pool;
  cache::Cache cache;
  std::string fail_at;
  int64_t fail_from = 0;
  Forward fwd;
  cache::SeqId seq;
};

std::string synthetic_path() {
  return write_model(synthetic_model(SyntheticModel{}).bytes(), "ok");
}

// Prompt (21 tokens: one page and a 5-token tail), then a 20-token step in three chunks that
// fails at each kind of point, then the same step again, then one decode step.
TEST(ForwardFailure, AFailedStepLeavesTheSequenceAsBefore) {
  const std::string path = synthetic_path();
  Session ok(path);
  ok.eval(ids(21, 1));
  const std::vector<float> want_step = ok.eval(ids(20, 5));
  const std::vector<float> want_next = ok.eval({9});
  const std::string want_state = state_of(ok.cache, ok.seq);

  const std::pair<const char*, int64_t> points[] = {
      {"token_embd", 21},     // before any layer
      {"blk.0.k_rope", 29},   // second chunk, before its first append
      {"blk.1.kqv_out", 29},  // second chunk, layer 0 appended, layer 1 appended and read
      {"blk.0.ffn_inp", 37},  // last chunk, layer 0 appended
      {"output.weight", 40},  // every layer appended, the logits fail
  };
  for (const auto& [name, from] : points) {
    SCOPED_TRACE(name);
    Session s(path);
    s.eval(ids(21, 1));
    const std::string before = state_of(s.cache, s.seq);
    s.fail_at = name;
    s.fail_from = from;
    EXPECT_EQ(error_of([&] { s.eval(ids(20, 5)); }), fmt::format("injected failure at {}", name));
    EXPECT_TRUE(s.fail_at.empty()) << "the failure point was not reached";
    EXPECT_EQ(state_of(s.cache, s.seq), before);
    s.cache.check_invariants();
    EXPECT_EQ(s.eval(ids(20, 5)), want_step);
    EXPECT_EQ(s.eval({9}), want_next);
    EXPECT_EQ(state_of(s.cache, s.seq), want_state);
  }
}

TEST(ForwardFailure, ABrokenModelsNonFiniteKIsRejectedAndChangesNothing) {
  const std::string path =
      write_model(kvpack::testing::with_nan_weight(synthetic_model(SyntheticModel{}).bytes(),
                                                   "blk.1.attn_k.weight"),
                  "nan");
  Session s(path);
  const std::string before = state_of(s.cache, s.seq);
  const std::string e = error_of([&] { s.eval(ids(20, 1)); });
  EXPECT_HAS(e, "non-finite K value nan in append to sequence 0, layer 1");
  EXPECT_EQ(state_of(s.cache, s.seq), before);
  s.cache.check_invariants();
}

TEST(ForwardFailure, AFullCacheFailsBeforeAnyWorkAndChangesNothing) {
  const std::string path = synthetic_path();
  Session s(path, /*context=*/32);  // two pages of 16 tokens, no n_ctx limit
  s.eval(ids(21, 1));
  const std::string before = state_of(s.cache, s.seq);
  EXPECT_EQ(error_of([&] { s.eval(ids(20, 5)); }),
            "forward: 20 tokens after 21: kv cache full: need 1 page, 0 free, 0 evictable");
  EXPECT_EQ(state_of(s.cache, s.seq), before);
  // What fits still runs, as in a cache that never failed.
  Session ok(path, 32);
  ok.eval(ids(21, 1));
  EXPECT_EQ(s.eval(ids(11, 5)), ok.eval(ids(11, 5)));
}

}  // namespace
}  // namespace kvpack::model
