// kvpack against llama.cpp on the tiny random-weight model of every architecture and weight type
// (../shared/models/arch): the prompt's tokenization, teacher-forced logits, free-running greedy
// tokens and MoE routing, within the tolerances arch_fixture.h derives from the weight and
// activation types.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "arch_fixture.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using testing::ArchGold;
using testing::ErrorModel;
using testing::RouteFollower;

// Failures reported per test before the rest are only counted.
constexpr int kReported = 5;

struct Case {
  const char* arch;
  const char* type;
  const char* prompt;
};

std::string case_name(const Case& c) {
  return fmt::format("{}-{}.{}", c.arch, c.type, c.prompt);
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << case_name(c);
}

struct Loaded {
  ArchGold gold;
  std::unique_ptr<Model> model;
};

Loaded load(const Case& c, std::string* why) {
  const auto gold = kvpack::testing::shared_file(
      fmt::format("models/arch/gold/{}-{}.{}.json", c.arch, c.type, c.prompt), why);
  if (gold.empty()) return {};
  const auto model = kvpack::testing::shared_file(
      fmt::format("models/arch/models/{}-{}.gguf", c.arch, c.type), why);
  if (model.empty()) return {};
  return {testing::read_arch_gold(gold.string()), Model::load(model.string())};
}

class ArchFixture : public ::testing::TestWithParam<Case> {};

#define KVPACK_LOAD_FIXTURE(var)                              \
  std::string why_;                                           \
  const Loaded var = load(GetParam(), &why_);                 \
  if (!var.model) {                                           \
    if (::kvpack::testing::shared_required()) FAIL() << why_; \
    GTEST_SKIP() << "SKIPPED (shared data absent): " << why_; \
  }

TEST_P(ArchFixture, TeacherForcedLogitsAgree) {
  KVPACK_LOAD_FIXTURE(f);
  // The prompt's text as kvpack run tokenizes it gives llama.cpp's ids.
  EXPECT_EQ(f.model->tokenizer()->encode(f.gold.prompt, true, true), f.gold.prompt_ids);
  const ErrorModel e = testing::error_model(*f.model);
  RouteFollower routes(f.gold, e, RouteFollower::Mode::follow);
  ThreadPool pool(2);
  ForwardOptions o;
  routes.attach(o);
  const auto rows = testing::teacher_forced_logits(*f.model, f.gold, format::KVPolicy(), pool, o);
  ASSERT_EQ(rows.size(), f.gold.n_rows());
  int top1_checked = 0, compared = 0, failed = 0;
  double worst = 0;  // largest |d| / tol
  for (size_t i = 0; i < rows.size() && static_cast<int64_t>(i) < routes.diverged_at; ++i) {
    const ArchGold::Top& top = f.gold.top(i);
    const double sigma = testing::spread(rows[i]);
    const bool split = f.gold.split_decode(i);
    const double tol = e.logit_tol(sigma, split);
    for (const auto& [id, logit] : top) {
      const double d = std::fabs(rows[i][static_cast<size_t>(id)] - logit);
      worst = std::max(worst, d / tol);
      if (d > tol && ++failed <= kReported) {
        ADD_FAILURE() << "row " << i << " id " << id << ": " << rows[i][id] << " vs llama.cpp's "
                      << logit << ", tolerance " << tol;
      }
    }
    ++compared;
    if (top[0].second - top[1].second > e.gap_tol(sigma, split)) {
      ++top1_checked;
      const auto best = std::max_element(rows[i].begin(), rows[i].end()) - rows[i].begin();
      if (best != top[0].first && ++failed <= kReported) {
        ADD_FAILURE() << "row " << i << ": top-1 " << best << ", llama.cpp's " << top[0].first
                      << " by a gap of " << top[0].second - top[1].second;
      }
    }
  }
  EXPECT_EQ(failed, 0);
  // The checks must bite: every prompt row compared, a fifth of the rows or more with a clear
  // top-1 (Gemma 2's final softcap squeezes its top logits: the fewest there), and more routes
  // checked than followed.
  EXPECT_GE(compared, static_cast<int>(f.gold.prompt_ids.size()));
  EXPECT_GE(top1_checked, compared / 5);
  EXPECT_GE(routes.checked, routes.followed);
  std::printf("[ %s ] s %.2e, worst |d|/tol %.2f, top-1 checked in %d of %d rows",
              case_name(GetParam()).c_str(), e.logits_s(), worst, top1_checked, compared);
  if (!f.gold.moe_experts.empty()) {
    std::printf("; routes checked %d, followed %d", routes.checked, routes.followed);
  }
  std::printf("\n");
}

// Greedy decoding from llama.cpp's prompt ids reproduces its 32 tokens until the two part at a
// near-tie (or never).
TEST_P(ArchFixture, GreedyTokensAgreeUpToANearTie) {
  KVPACK_LOAD_FIXTURE(f);
  const size_t agreed = testing::greedy_agreement(*f.model, f.gold, RouteFollower::Mode::follow);
  std::printf("[ %s ] %zu of %zu greedy tokens agree\n", case_name(GetParam()).c_str(), agreed,
              f.gold.gen_ids.size());
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* arch : {"llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3"}) {
    for (const char* type : {"f16", "q8_0", "q4_k_m"}) {
      for (const char* prompt : {"prose", "code"}) out.push_back({arch, type, prompt});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Arch, ArchFixture, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return fmt::format("{}_{}_{}", i.param.arch, i.param.type,
                                              i.param.prompt);
                         });

}  // namespace
}  // namespace kvpack::model
