// Perplexity and KLD on stories260K: the chunking is llama.cpp's, the f32-cache perplexity equals
// a scalar evaluation and does not move with threads, batch or page size, the f32 cache against
// itself has KLD exactly 0, and every format's KLD is reported in a sane order.
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/error.h"
#include "eval/policy_cost.h"
#include "scalar_llama.h"
#include "stories.h"

namespace kvpack::eval {
namespace {

using format::FormatId;
using format::KVPolicy;

const KVPolicy kF32(FormatId::f32, FormatId::f32);

PerplexityOptions options(const testing::Stories& s, int64_t context, int chunks) {
  PerplexityOptions o;
  o.context = context;
  o.max_chunks = chunks;
  o.bos = s.bos;
  return o;
}

TEST(PerplexityChunks, AsLlamaCpp) {
  std::vector<int32_t> tokens(100);
  for (int i = 0; i < 100; ++i) tokens[static_cast<size_t>(i)] = 10 + i;
  PerplexityOptions o{.context = 16, .bos = 1};
  const std::vector<int32_t> c = perplexity_chunk(tokens, 2, o);
  ASSERT_EQ(c.size(), 16u);
  EXPECT_EQ(c[0], 1);  // BOS replaces the chunk's first token
  for (int i = 1; i < 16; ++i) EXPECT_EQ(c[static_cast<size_t>(i)], 10 + 32 + i);
  EXPECT_EQ(perplexity_chunk_count(100, o), 6);  // whole chunks only
  o.max_chunks = 4;
  EXPECT_EQ(perplexity_chunk_count(100, o), 4);
  o.bos = -1;
  EXPECT_EQ(perplexity_chunk(tokens, 0, o)[0], 10);
  EXPECT_THROW(perplexity_chunk_count(15, o), Error);
}

// Equal to n significant figures: |a - b| below half a unit of the n-th figure of b.
void expect_sig_figs(double a, double b, int n) {
  const double unit = std::pow(10.0, std::floor(std::log10(std::fabs(b))) - (n - 1));
  EXPECT_LT(std::fabs(a - b), unit / 2) << a << " vs " << b;
}

TEST(PerplexityStories, F32CacheEqualsAScalarEvaluation) {
  KVPACK_STORIES(s);
  ThreadPool pool(2);
  const PerplexityReport r =
      evaluate_perplexity(*s.model, s.tokens, kF32, {}, options(s, 512, 2), pool);
  const double scalar = testing::scalar_perplexity(*s.model, s.tokens, 512, 2, s.bos);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].tokens, 2 * 255);
  expect_sig_figs(r.rows[0].ppl, scalar, 4);
  EXPECT_NEAR(r.rows[0].ppl, scalar, scalar * 2e-5);  // in fact far closer than 4 figures
}

TEST(PerplexityStories, StableAcrossThreadsBatchesAndPages) {
  KVPACK_STORIES(s);
  ThreadPool one(1), two(2);
  PerplexityOptions o = options(s, 256, 3);
  const PerplexityReport a = evaluate_perplexity(*s.model, s.tokens, kF32, {}, o, one);
  o.batch = 48;  // prefill in uneven pieces
  o.page_tokens = 16;
  const PerplexityReport b = evaluate_perplexity(*s.model, s.tokens, kF32, {}, o, two);
  o.batch = 512;
  o.page_tokens = 64;
  o.max_chunks = 2;  // fewer chunks: the first ones do not change
  const PerplexityReport c = evaluate_perplexity(*s.model, s.tokens, kF32, {}, o, two);
  EXPECT_NEAR(a.rows[0].ppl, b.rows[0].ppl, a.rows[0].ppl * 1e-6);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(a.rows[0].chunk_ppl[i], b.rows[0].chunk_ppl[i], 1e-5);
    EXPECT_NEAR(a.rows[0].chunk_ppl[i], c.rows[0].chunk_ppl[i], 1e-5);
  }
}

TEST(PerplexityStories, F32AgainstItselfIsExactlyZero) {
  KVPACK_STORIES(s);
  ThreadPool pool(2);
  const PerplexityReport r =
      evaluate_perplexity(*s.model, s.tokens, kF32, {kF32}, options(s, 256, 2), pool);
  ASSERT_EQ(r.rows.size(), 2u);
  const PolicyPerplexity& p = r.rows[1];
  ASSERT_TRUE(p.has_kld);
  EXPECT_EQ(p.kld_mean, 0.0);
  EXPECT_EQ(p.kld_max, 0.0);
  EXPECT_EQ(p.top1, 1.0);
  EXPECT_EQ(p.dppl, 0.0);
  EXPECT_EQ(p.ppl, r.rows[0].ppl);
}

TEST(PerplexityStories, EveryFormatReportedInASaneOrder) {
  KVPACK_STORIES(s);
  const model::ModelSpec& hp = s.model->spec();
  std::vector<KVPolicy> policies;
  for (const format::FormatInfo& f : format::all_formats()) {
    policies.emplace_back(f.id, f.supports(format::Role::V) ? f.id : FormatId::f16);
  }
  ThreadPool pool(2);
  const PerplexityReport r =
      evaluate_perplexity(*s.model, s.tokens, KVPolicy(), policies, options(s, 256, 2), pool);
  ASSERT_EQ(r.rows.size(), policies.size() + 1);
  std::map<FormatId, const PolicyPerplexity*> by_k;
  for (size_t i = 1; i < r.rows.size(); ++i) {
    const PolicyPerplexity& p = r.rows[i];
    EXPECT_TRUE(p.has_kld);
    EXPECT_TRUE(std::isfinite(p.kld_mean) && p.kld_mean >= 0) << p.policy.to_string();
    EXPECT_LE(p.kld_median, p.kld_p99);
    EXPECT_LE(p.kld_p99, p.kld_max);
    // The price the report shows is what the cache takes.
    cache::Cache cache(s.model->cache_config(p.policy, 64));
    EXPECT_DOUBLE_EQ(p.bytes_per_token, static_cast<double>(cache.page_bytes()) / 32);
    by_k[p.policy.base().k] = &p;
  }
  const auto kld = [&](FormatId f) { return by_k.at(f)->kld_mean; };
  EXPECT_EQ(kld(FormatId::f16), 0.0);  // the baseline's own policy, run again
  EXPECT_LT(kld(FormatId::f32), kld(FormatId::q8));
  EXPECT_LT(kld(FormatId::q8), kld(FormatId::q4));
  EXPECT_LT(kld(FormatId::turbo4), kld(FormatId::turbo3));
  EXPECT_LT(kld(FormatId::turbo3), kld(FormatId::turbo2));
  EXPECT_LT(kld(FormatId::kivi4), kld(FormatId::kivi2));
  EXPECT_LT(by_k.at(FormatId::q8)->top1, 1.0);
  EXPECT_GT(by_k.at(FormatId::q8)->top1, by_k.at(FormatId::q4)->top1);
  (void)hp;
}

TEST(PerplexityStories, ReportHasARowPerPolicy) {
  KVPACK_STORIES(s);
  ThreadPool pool(2);
  const PerplexityReport r =
      evaluate_perplexity(*s.model, s.tokens, KVPolicy(), {KVPolicy(FormatId::q8, FormatId::q8)},
                          options(s, 64, 2), pool);
  const Report rep = render_perplexity(r, "kvpack eval ppl ...");
  EXPECT_NE(rep.text.find("f16/f16 (baseline)"), std::string::npos);
  EXPECT_NE(rep.markdown.find("| q8/q8 "), std::string::npos);
  ASSERT_EQ(rep.json["results"].size(), 2u);
  EXPECT_TRUE(rep.json["results"][1].contains("kld_p99"));
  EXPECT_FALSE(rep.json["results"][0].contains("kld_mean"));
  EXPECT_EQ(rep.chart.points.size(), 1u);
}

}  // namespace
}  // namespace kvpack::eval
