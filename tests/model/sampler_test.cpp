#include "model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"

namespace kvpack::model {
namespace {

std::vector<float> log_probs(std::vector<double> p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

TEST(Sampler, GreedyTakesArgmaxWithTiesToLowestId) {
  Sampler s({.temperature = 0});
  EXPECT_EQ(s.sample(std::vector<float>{1, 3, 3, 2}, {}), 1);
  EXPECT_EQ(argmax(std::vector<float>{-5, -1, -7}), 1);
}

TEST(Sampler, TopKOfOneIsGreedyAtAnyTemperature) {
  Sampler s({.temperature = 5, .top_k = 1, .top_p = 1, .min_p = 0, .seed = 3});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(std::vector<float>{0.1f, 0.3f, 0.2f}, {}), 1);
}

TEST(Sampler, DrawsMatchTheDistribution) {
  Sampler s({.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0, .seed = 7});
  const auto logits = log_probs({0.5, 0.3, 0.2});
  const int n = 20000;
  std::vector<int> hits(3);
  for (int i = 0; i < n; ++i) ++hits[static_cast<size_t>(s.sample(logits, {}))];
  for (int t = 0; t < 3; ++t) {
    const double p = std::exp(static_cast<double>(logits[static_cast<size_t>(t)]));
    const double sigma = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(hits[static_cast<size_t>(t)], n * p, 4 * sigma) << t;
  }
}

TEST(Sampler, TopPAndMinPTruncate) {
  const auto logits = log_probs({0.5, 0.3, 0.15, 0.05});
  Sampler top_p({.temperature = 1, .top_k = 0, .top_p = 0.6f, .min_p = 0, .seed = 1});
  Sampler min_p({.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0.5f, .seed = 1});
  for (int i = 0; i < 2000; ++i) {
    EXPECT_LE(top_p.sample(logits, {}), 1);  // 0.5 + 0.3 reaches 0.6
    EXPECT_LE(min_p.sample(logits, {}), 1);  // p >= 0.25
  }
}

TEST(Sampler, SeedsReproduce) {
  const auto logits = log_probs({0.25, 0.25, 0.25, 0.25});
  Sampler a({.temperature = 1, .seed = 42}), b({.temperature = 1, .seed = 42}),
      c({.temperature = 1, .seed = 43});
  std::vector<int32_t> ra, rb, rc;
  for (int i = 0; i < 50; ++i) {
    ra.push_back(a.sample(logits, {}));
    rb.push_back(b.sample(logits, {}));
    rc.push_back(c.sample(logits, {}));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  Sampler s({.temperature = 0, .repeat_penalty = 2.0f});
  const std::vector<float> logits = {1.0f, 1.5f, -1.0f};
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{1}), 0);  // 1.5 / 2 < 1.0
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{2}), 1);
}

// llama.cpp's meanings are kept (temperature <= 0 greedy, top-k <= 0 off, repeat-last-n -1 all);
// values outside them are errors naming the flag, never silently accepted.
TEST(Sampler, ValidatesParameters) {
  const float nan = std::nanf("");
  const float inf = INFINITY;
  const auto error_for = [](SamplerConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      return e.message();
    }
    return std::string();
  };
  EXPECT_EQ(
      error_for({.temperature = -1, .top_k = -5, .top_p = 0, .min_p = 1, .repeat_last_n = -1}), "");
  EXPECT_NE(error_for({.temperature = nan}).find("--temp nan"), std::string::npos);
  EXPECT_NE(error_for({.temperature = inf}).find("--temp inf"), std::string::npos);
  EXPECT_NE(error_for({.top_p = 1.5f}).find("--top-p 1.5"), std::string::npos);
  EXPECT_NE(error_for({.top_p = nan}).find("--top-p"), std::string::npos);
  EXPECT_NE(error_for({.min_p = -0.1f}).find("--min-p"), std::string::npos);
  EXPECT_NE(error_for({.repeat_penalty = 0}).find("--repeat-penalty 0"), std::string::npos);
  EXPECT_NE(error_for({.repeat_penalty = nan}).find("--repeat-penalty"), std::string::npos);
  EXPECT_NE(error_for({.repeat_penalty = -1}).find("--repeat-penalty"), std::string::npos);
  EXPECT_NE(error_for({.repeat_last_n = -2}).find("--repeat-last-n -2"), std::string::npos);
  EXPECT_THROW(Sampler({.top_p = 2}), Error);
  // Greedy at a negative temperature; top-p 0 keeps only the most likely token.
  Sampler greedy({.temperature = -1});
  EXPECT_EQ(greedy.sample(std::vector<float>{1, 3, 2}, {}), 1);
  Sampler top1({.temperature = 1, .top_k = 0, .top_p = 0, .min_p = 0, .seed = 1});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(top1.sample(std::vector<float>{1, 3, 2}, {}), 1);
}

// Broken weights give NaN logits: an error, not an abort; a NaN among numbers is skipped.
TEST(Sampler, NanLogits) {
  const float nan = std::nanf("");
  EXPECT_EQ(argmax(std::vector<float>{nan, 1, 3, nan}), 2);
  EXPECT_THROW(argmax(std::vector<float>{nan, nan}), Error);
  Sampler s({.temperature = 1, .seed = 1});
  EXPECT_THROW(s.sample(std::vector<float>{nan, nan}, {}), Error);
}

}  // namespace
}  // namespace kvpack::model
