// The policy search end to end on stories260K: sensitivity measured on a held-out chunk, the
// searched policy within the budget and no worse (by the same error model) than any uniform
// policy within it, and every confirmation figure present.
#include "kvpack/eval.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "eval/policy_cost.h"
#include "stories.h"

namespace kvpack::eval {
namespace {

using format::FormatId;

TEST(PolicyEval, SearchesWithinTheBudgetAndConfirms) {
  KVPACK_STORIES(s);
  const model::ModelSpec& hp = s.model->spec();
  PolicySearchOptions o;
  o.formats = {FormatId::f16, FormatId::q8, FormatId::q4, FormatId::kivi2, FormatId::turbo4};
  o.budget_bytes_per_token = 8 * values_per_token(hp) / 8;  // 8 bits per value
  o.budget_text = "8 bits per value";
  o.ppl.context = 128;
  o.ppl.max_chunks = 2;
  o.ppl.bos = s.bos;
  o.compare = 3;
  ThreadPool pool(2);
  const PolicySearchReport r = search_policy(*s.model, s.tokens, format::KVPolicy(), o, pool);
  EXPECT_TRUE(r.calibration_held_out);
  EXPECT_EQ(r.calibration_chunk, 2);
  EXPECT_EQ(r.confirmation_chunks, 2);
  // The table: kivi2 holds no values, errors grow as bits shrink.
  ASSERT_EQ(r.table.formats.size(), 5u);
  EXPECT_LT(r.table.v_bytes[3], 0);
  for (int l = 0; l < hp.n_layers(); ++l) {
    const auto& k = r.table.k_error[static_cast<size_t>(l)];
    EXPECT_LT(k[0], k[1]);
    EXPECT_LT(k[1], k[2]);
  }
  const ConfirmedPolicy& searched = r.confirmed[0];
  EXPECT_EQ(searched.kind, "searched");
  EXPECT_LE(searched.measured.bytes_per_token, o.budget_bytes_per_token);
  EXPECT_NEAR(searched.predicted, r.result.error, 1e-12);
  ASSERT_EQ(r.confirmed.size(), 4u);  // the searched policy and three uniform ones
  for (size_t i = 1; i < r.confirmed.size(); ++i) {
    const ConfirmedPolicy& c = r.confirmed[i];
    EXPECT_EQ(c.kind, "uniform");
    EXPECT_TRUE(c.measured.policy.uniform());
    EXPECT_LE(c.measured.bytes_per_token, o.budget_bytes_per_token);
    EXPECT_LE(searched.predicted, c.predicted + 1e-12);  // the optimum of its own error model
    EXPECT_TRUE(std::isfinite(c.dkld) && c.dkld_stderr > 0);
  }
  EXPECT_LT(r.best, r.confirmed.size());
  const Report rep = render_policy_search(r, "kvpack eval policy ...");
  EXPECT_NE(rep.text.find("--kv \"" + searched.measured.policy.to_string() + "\""),
            std::string::npos);
  EXPECT_NE(rep.text.find("recommended"), std::string::npos);
  EXPECT_EQ(rep.json["measured"].size(), 4u);
  EXPECT_EQ(rep.chart.points.size(), 4u);
  EXPECT_TRUE(rep.chart.points[0].highlight);
}

TEST(PolicyEval, BudgetBelowTheCheapestChoiceIsAnError) {
  KVPACK_STORIES(s);
  PolicySearchOptions o;
  o.formats = {FormatId::q8};
  o.budget_bytes_per_token = 10;
  o.ppl.context = 64;
  o.ppl.max_chunks = 1;
  ThreadPool pool(2);
  EXPECT_THROW(search_policy(*s.model, s.tokens, format::KVPolicy(), o, pool), Error);
}

}  // namespace
}  // namespace kvpack::eval
