// Attention fidelity on stories260K's captured q/k/v: the capture reproduces the forward pass,
// the f32 policy is exact, errors order as the formats do, and K-only / V-only variants isolate
// each side.
#include "eval/attention_fidelity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "eval/metrics.h"
#include "stories.h"

namespace kvpack::eval {
namespace {

using format::FormatId;
using format::KVPolicy;

constexpr int64_t kTokens = 160;  // 5 pages of 32 tokens

AttentionCapture capture(const testing::Stories& s, ThreadPool& pool) {
  std::vector<int32_t> t(s.tokens.begin(), s.tokens.begin() + kTokens);
  return capture_attention(*s.model, t, /*batch=*/64, /*page_tokens=*/32, pool);
}

TEST(AttentionFidelity, CaptureReproducesTheForwardPass) {
  KVPACK_STORIES(s);
  ThreadPool pool(2);
  const AttentionCapture c = capture(s, pool);
  ASSERT_EQ(c.n_tokens(), kTokens);
  ASSERT_EQ(c.q.size(), 5u);
  // The forward's own attention outputs, traced.
  const model::ModelSpec& hp = s.model->spec();
  std::vector<std::vector<float>> traced(5, std::vector<float>(kTokens * hp.att_dim()));
  cache::Cache cache(s.model->cache_config(KVPolicy(FormatId::f32, FormatId::f32), kTokens));
  model::ForwardOptions o{.max_chunk = 64};
  o.trace = [&](const model::TraceTensor& t) {
    if (t.layer >= 0 && t.name.ends_with("kqv_out")) {
      std::copy(t.data, t.data + t.rows * t.cols,
                traced[static_cast<size_t>(t.layer)].begin() + t.pos * t.cols);
    }
  };
  model::Forward fwd(*s.model, cache, pool, o);
  fwd.eval(cache.create(), std::span<const int32_t>(c.tokens));
  PolicyAttention f32(*s.model, c, KVPolicy(FormatId::f32, FormatId::f32), pool);
  for (int l = 0; l < 5; ++l) {
    EXPECT_LT(relative_error(f32.output(l), traced[static_cast<size_t>(l)]), 1e-5) << l;
  }
}

TEST(AttentionFidelity, ExactForF32AndOrderedByFormat) {
  KVPACK_STORIES(s);
  ThreadPool pool(2);
  const AttentionCapture c = capture(s, pool);
  const std::vector<KVPolicy> policies = {
      KVPolicy(FormatId::f32, FormatId::f32),       KVPolicy(FormatId::q8, FormatId::q8),
      KVPolicy(FormatId::q4, FormatId::q4),         KVPolicy(FormatId::f32, FormatId::q4),
      KVPolicy(FormatId::turbo4, FormatId::turbo4), KVPolicy(FormatId::turbo2, FormatId::turbo2)};
  FidelityOptions o;
  o.long_distance = 64;
  const FidelityReport r = evaluate_attention(*s.model, c, policies, o, pool);
  ASSERT_EQ(r.rows.size(), policies.size());
  for (const LayerFidelity& l : r.rows[0].layers) {
    EXPECT_EQ(l.out_rel_error, 0.0);
    EXPECT_EQ(l.out_cos_min, 1.0);
    EXPECT_EQ(l.logit_err_mean, 0.0);
    EXPECT_EQ(l.logit_err_std, 0.0);
    EXPECT_EQ(l.topk_overlap, 1.0);
    EXPECT_EQ(l.link_kept, 1.0);
    EXPECT_GT(l.links, 0);
  }
  const auto err = [&](size_t i) { return r.rows[i].mean_rel_error; };
  EXPECT_GT(err(1), 0);
  EXPECT_LT(err(1), err(2));  // q8 < q4
  EXPECT_LT(err(4), err(5));  // turbo4 < turbo2
  for (size_t l = 0; l < 5; ++l) {
    // K-only and V-only isolate each side: f32 keys leave only the V error.
    const LayerFidelity& vq4 = r.rows[3].layers[l];
    EXPECT_EQ(vq4.k_only_rel_error, 0.0);
    EXPECT_EQ(vq4.v_only_rel_error, vq4.out_rel_error);
    EXPECT_EQ(vq4.logit_err_std, 0.0);
    EXPECT_EQ(vq4.v_only_rel_error, r.rows[2].layers[l].v_only_rel_error);
    EXPECT_LT(r.rows[2].layers[l].topk_overlap, 1.0);
  }
  EXPECT_EQ(r.rows[3].k_dominant_layers, 0);
  EXPECT_EQ(r.rows[2].most_sensitive.size(), 3u);
  const Report rep = render_attention(r, "kvpack eval attention ...");
  EXPECT_NE(rep.text.find("most sensitive layers"), std::string::npos);
  EXPECT_EQ(rep.json["results"][1]["layers"].size(), 5u);
}

TEST(AttentionFidelity, OutputComparisonByHand) {
  // Two rows of dim 2: one exact, one turned by 90 degrees.
  const std::vector<float> ref = {1, 0, 0, 2}, out = {1, 0, 2, 0};
  LayerFidelity f;
  compare_outputs(out, ref, 2, f);
  EXPECT_NEAR(f.out_rel_error, std::sqrt(8.0 / 5.0), 1e-12);
  EXPECT_NEAR(f.out_cos_mean, 0.5, 1e-12);
  EXPECT_EQ(f.out_cos_min, 0.0);
}

TEST(AttentionFidelity, KeysOnlyAndValuesOnlyPolicies) {
  KVPolicy p = KVPolicy::parse("k=q4,v=q8;1:k=turbo4;-1:v=f16");
  EXPECT_EQ(keys_only(p, 4).to_string(), KVPolicy::parse("k=q4,v=f32;1:k=turbo4").to_string());
  const KVPolicy v = values_only(p, 4);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(v.layer(l, 4).k, FormatId::f32);
    EXPECT_EQ(v.layer(l, 4).v, l == 3 ? FormatId::f16 : FormatId::q8);
  }
}

}  // namespace
}  // namespace kvpack::eval
