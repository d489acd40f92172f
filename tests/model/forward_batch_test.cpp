// Forward::eval_batch: several sequences' tokens through the layers together give each sequence
// bit for bit what eval() of that sequence alone gives when its tokens are cut into the same
// passes. Bit for bit, not within a tolerance: every matmul computes row t of its output with the
// same operations whatever the other rows are (matmul.h), norms, RoPE and the FFN are row by
// row, the experts of a mixture sum per row in expert order, and attention runs per sequence;
// the one exception, decode_batch splitting a sequence of 2 x 16 pages or more among its tasks
// differently (model.h), cannot happen here: every sequence stays under 8 pages.
//
// And a batch that fails -- an id outside the vocabulary in its second item, a cache too full for
// its second item, a failure in the middle of its second pass -- leaves every sequence and every
// page exactly as before.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "error_of.h"
#include "kvpack/model.h"
#include "model/synthetic_model.h"

namespace kvpack::model {
namespace {

using kvpack::testing::error_of;

constexpr int kChunk = 16;  // rows per pass
constexpr int kPage = 16;   // tokens per page

struct Case {
  const char* name;
  const char* arch;
  const char* kv;
  int64_t window;  // sliding window of the synthetic model (0: none)
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

std::string write_model(const SyntheticModel& m, const std::string& name) {
  const std::vector<uint8_t> bytes = synthetic_model(m).bytes();
  // Named after the test: CTest runs tests in parallel processes, and rewriting a file that
  // another one has mapped would pull its pages away.
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(test.begin(), test.end(), '/', '_');  // parameterised names hold a slash
  const std::string path =
      fmt::format("{}/forward_batch_{}_{}.gguf", ::testing::TempDir(), test, name);
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

// One cache of `sequences` sequences and a forward over it; the trace callback throws at a
// chosen tensor and position once armed.
struct Runner {
  Runner(const Model& model, const char* kv, int sequences, uint32_t pages_per_sequence = 0)
      : pool(2), cache(config(model, kv, sequences, pages_per_sequence)) {
    fwd = std::make_unique<Forward>(
        model, cache, pool,
        ForwardOptions{.max_chunk = kChunk, .trace = [this](const TraceTensor& t) {
                         if (t.name == fail_at && t.pos >= fail_from) {
                           fail_at.clear();
                           throw Error(fmt::format("injected failure at {}", t.name));
                         }
                       }});
    for (int i = 0; i < sequences; ++i) seqs.push_back(cache.create());
  }

  static cache::CacheConfig config(const Model& model, const char* kv, int sequences,
                                   uint32_t pages_per_sequence) {
    cache::CacheConfig c = model.cache_config(format::KVPolicy::parse(kv), 128, kPage, kChunk);
    if (pages_per_sequence > 0) c.n_pages = pages_per_sequence;
    c.n_pages *= static_cast<uint32_t>(sequences);
    return c;
  }

  std::vector<float> eval(int i, const std::vector<int32_t>& tokens) {
    const std::span<const float> l = fwd->eval(seqs[static_cast<size_t>(i)], tokens);
    return {l.begin(), l.end()};
  }

  // The batch of (sequence index, tokens); each item's logits.
  std::vector<std::vector<float>> batch(
      const std::vector<std::pair<int, std::vector<int32_t>>>& items) {
    std::vector<BatchItem> b;
    for (const auto& [i, tokens] : items) b.push_back({seqs[static_cast<size_t>(i)], tokens});
    const std::span<const float> l = fwd->eval_batch(b);
    const size_t v = l.size() / items.size();
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < items.size(); ++i)
      out.emplace_back(l.begin() + i * v, l.begin() + (i + 1) * v);
    return out;
  }

  // What a failed batch must not change: every sequence and every page's state (counters and
  // the high-water marks count work done, so they are left out).
  std::string state() const {
    cache::Residency r = cache.residency();
    r.counters = {};
    r.touched_bytes = 0;
    r.peak = {};
    std::string out = r.to_json(-1);
    for (const cache::SeqId s : seqs) {
      out += fmt::format("\nids {} pages", fmt::join(cache.token_ids(s), " "));
      for (int g = 0; g < static_cast<int>(cache.layout().groups.size()); ++g) {
        out += fmt::format(" [{}]", fmt::join(cache.page_table(s, g), " "));
      }
    }
    return out;
  }

  ThreadPool pool;
  cache::Cache cache;
  std::unique_ptr<Forward> fwd;
  std::vector<cache::SeqId> seqs;
  std::string fail_at;
  int64_t fail_from = 0;
};

using Items = std::vector<std::pair<int, std::vector<int32_t>>>;

// The logits each item gets when every sequence runs alone, its tokens cut where eval_batch's
// passes cut them: the items' tokens laid end to end, in passes of kChunk rows.
std::vector<std::vector<float>> alone(Runner& r, const Items& items) {
  std::vector<std::vector<float>> out;
  size_t row = 0;
  for (const auto& [i, tokens] : items) {
    std::vector<float> last;
    for (size_t at = 0; at < tokens.size();) {
      const size_t n = std::min(tokens.size() - at, kChunk - row % kChunk);
      last = r.eval(i, std::vector<int32_t>(tokens.begin() + static_cast<ptrdiff_t>(at),
                                            tokens.begin() + static_cast<ptrdiff_t>(at + n)));
      at += n;
      row += n;
    }
    out.push_back(std::move(last));
  }
  return out;
}

SyntheticModel shape(const Case& c) {
  SyntheticModel m;
  m.arch = c.arch;
  m.window = c.window;
  return m;
}

class ForwardBatch : public ::testing::TestWithParam<Case> {};

// Four sequences of different lengths: decode rows beside prefill pieces, a prompt across three
// passes, then decode steps of all four in one pass, then a batch in another order.
TEST_P(ForwardBatch, EqualsEachSequenceAlone) {
  const std::unique_ptr<Model> model = Model::load(write_model(shape(GetParam()), "m"));
  Runner batched(*model, GetParam().kv, 4), single(*model, GetParam().kv, 4);
  const Items prompts = {{0, ids(5, 1)}, {1, ids(20, 2)}, {3, ids(9, 4)}};
  for (const auto& [i, tokens] : prompts) {
    EXPECT_EQ(batched.eval(i, tokens), single.eval(i, tokens));
  }
  const Items steps[] = {
      // 1 + 3 + 30 + 1 rows: sequence 2's prompt continues in passes 2 and 3.
      {{0, {7}}, {1, ids(3, 5)}, {2, ids(30, 6)}, {3, {11}}},
      {{0, {8}}, {1, {9}}, {2, {10}}, {3, {12}}},  // one pass of decode rows
      {{3, ids(17, 3)}, {2, {13}}, {0, ids(2, 9)}},
      {{2, {14}}, {1, {15}}, {0, {16}}, {3, {17}}},
  };
  for (const Items& step : steps) {
    const std::vector<std::vector<float>> got = batched.batch(step);
    const std::vector<std::vector<float>> want = alone(single, step);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i], want[i]) << "item " << i << " (sequence " << step[i].first << ")";
    }
  }
  for (int i = 0; i < 4; ++i) {
    const auto s = static_cast<size_t>(i);
    EXPECT_EQ(batched.cache.token_ids(batched.seqs[s]), single.cache.token_ids(single.seqs[s]));
  }
  batched.cache.check_invariants();
}

TEST_P(ForwardBatch, AnIdOutsideTheVocabularyInTheSecondItemChangesNothing) {
  const std::unique_ptr<Model> model = Model::load(write_model(shape(GetParam()), "m"));
  Runner r(*model, GetParam().kv, 2);
  r.eval(0, ids(21, 1));
  r.eval(1, ids(3, 2));
  const std::string before = r.state();
  EXPECT_EQ(error_of([&] {
              r.batch({{0, {5}}, {1, {3, 64}}});
            }),
            fmt::format("forward: sequence {}: token 1 (id 64) is outside the vocabulary of 64 "
                        "tokens",
                        r.seqs[1]));
  EXPECT_EQ(r.state(), before);
  EXPECT_EQ(error_of([&] {
              r.batch({{0, {5}}, {0, {6}}});
            }),
            fmt::format("forward: sequence {} appears twice in the batch", r.seqs[0]));
  EXPECT_EQ(r.state(), before);
}

// The second item needs pages the cache does not have: the first item's begun step is undone.
// Without the 8-token window (Gemma 3 then slides by its default 4096 tokens, more than the
// context), so that every layer keeps every page and the page counts below hold for each case.
TEST_P(ForwardBatch, AFullCacheForTheSecondItemChangesNothing) {
  SyntheticModel m = shape(GetParam());
  m.window = 0;
  const std::unique_ptr<Model> model = Model::load(write_model(m, "m"));
  // 6 pages in all: 1 + 2 held, then 2 + 5 asked for.
  Runner r(*model, GetParam().kv, 2, /*pages_per_sequence=*/3);
  r.eval(0, ids(5, 1));
  r.eval(1, ids(30, 2));
  const std::string before = r.state();
  const std::string e = error_of([&] { r.batch({{0, ids(20, 3)}, {1, ids(40, 4)}}); });
  EXPECT_NE(
      e.find(fmt::format("forward: sequence {}: 40 tokens after 30: kv cache full", r.seqs[1])),
      std::string::npos)
      << e;
  EXPECT_EQ(r.state(), before);
  r.cache.check_invariants();
}

// A failure in the second pass, after the first pass appended every layer of both sequences and
// the second appended some: both sequences as before, and the same batch then gives what it gives
// without the failure.
TEST_P(ForwardBatch, AFailureInTheSecondPassRollsBackEverySequence) {
  const std::unique_ptr<Model> model = Model::load(write_model(shape(GetParam()), "m"));
  const Items prompts = {{0, ids(7, 1)}, {1, ids(21, 2)}};
  // Pass 1: sequence 0 at 7..18, sequence 1 at 21..24; pass 2: sequence 1 at 25..30.
  const Items step = {{0, ids(12, 3)}, {1, ids(10, 4)}};
  Runner ok(*model, GetParam().kv, 2);
  for (const auto& [i, tokens] : prompts) ok.eval(i, tokens);
  const std::vector<std::vector<float>> want = ok.batch(step);
  const std::string want_state = ok.state();

  for (const char* at : {"blk.1.k_rope", "blk.1.kqv_out", "output.weight"}) {
    SCOPED_TRACE(at);
    Runner r(*model, GetParam().kv, 2);
    for (const auto& [i, tokens] : prompts) r.eval(i, tokens);
    const std::string before = r.state();
    r.fail_at = at;
    r.fail_from = 25;  // the second pass
    EXPECT_EQ(error_of([&] { r.batch(step); }), fmt::format("injected failure at {}", at));
    EXPECT_TRUE(r.fail_at.empty()) << "the failure point was not reached";
    EXPECT_EQ(r.state(), before);
    r.cache.check_invariants();
    EXPECT_EQ(r.batch(step), want);
    EXPECT_EQ(r.state(), want_state);
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, ForwardBatch,
                         ::testing::Values(Case{"llama_f16", "llama", "k=f16,v=f16", 0},
                                           Case{"llama_q8", "llama", "k=q8,v=q8", 0},
                                           Case{"qwen3_q8", "qwen3", "k=q8,v=q8", 0},
                                           Case{"gemma3_window8_f16", "gemma3", "k=f16,v=f16", 8},
                                           Case{"qwen3moe_q8", "qwen3moe", "k=q8,v=q8", 0}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace kvpack::model
