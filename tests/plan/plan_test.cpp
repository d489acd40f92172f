// Presets, budgets and whole plans.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "base/error.h"
#include "error_of.h"
#include "kvpack/plan.h"

namespace kvpack::plan {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

using kvpack::testing::error_of;

TEST(Presets, NamesAndShapesFollowThePublicConfigs) {
  std::set<std::string> names;
  for (const auto& p : presets()) {
    EXPECT_TRUE(std::regex_match(std::string(p.name), std::regex("[a-z0-9.]+(-[a-z0-9.]+)*")))
        << p.name;
    EXPECT_TRUE(names.insert(std::string(p.name)).second) << "duplicate " << p.name;
    EXPECT_LE(p.native_context, p.max_context) << p.name;
    EXPECT_EQ(p.q_heads % p.kv_heads, 0) << p.name << ": query heads group over KV heads";
    EXPECT_GT(p.params, 1e9) << p.name;
  }
  for (const char* n :
       {"qwen3-8b", "qwen2.5-7b", "qwen3-30b-a3b", "gemma-3-12b", "llama-3.1-8b", "mistral-7b"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  const ModelShape g2 = preset_shape(find_preset("gemma-2-9b"));
  EXPECT_EQ(g2.sliding_layers(), 21);  // alternating, layer 0 slides
  EXPECT_TRUE(g2.layers[0].sliding());
  EXPECT_FALSE(g2.layers[1].sliding());
  const ModelShape g3 = preset_shape(find_preset("gemma-3-27b"));
  EXPECT_EQ(g3.sliding_layers(), 62 - 10);  // global: 5, 11, ..., 59
  const ModelShape q = preset_shape(find_preset("qwen3-8b"), 4.85);
  EXPECT_NEAR(static_cast<double>(q.weight_bytes), 8.19e9 * 4.85 / 8, 1.0);
  EXPECT_EQ(preset_shape(find_preset("qwen3-8b"), 8).weight_bytes, 8190000000u);
}

TEST(Presets, UnknownPresetListsTheKnownOnes) {
  const std::string e = error_of([] { find_preset("qwen9-1t"); });
  EXPECT_NE(e.find("unknown preset 'qwen9-1t'"), std::string::npos) << e;
  EXPECT_NE(e.find("qwen3-8b"), std::string::npos) << e;
  EXPECT_NE(error_of([] { preset_shape(find_preset("qwen3-8b"), 0); }).find("weight bits"),
            std::string::npos);
}

TEST(Budget, SizesAndDevices) {
  EXPECT_EQ(parse_budget("16GiB").bytes, 16 * kGiB);
  EXPECT_EQ(parse_budget("24GB").bytes, 24000000000u);
  EXPECT_EQ(parse_budget("gpu-24gb").bytes, 24 * kGiB);
  EXPECT_EQ(parse_budget("RTX-4090").bytes, 24 * kGiB);
  // Macs: 2/3 of unified memory up to 36 GB, 3/4 above.
  EXPECT_EQ(parse_budget("mac-24gb").bytes, 16 * kGiB);
  EXPECT_EQ(parse_budget("mac-64gb").bytes, 48 * kGiB);
  EXPECT_NE(parse_budget("mac-16gb").label.find("of 16.00 GiB"), std::string::npos);
  for (const auto& d : devices()) {
    EXPECT_LE(d.usable, d.memory) << d.name;
    EXPECT_EQ(parse_budget(d.name).bytes, d.usable);
  }
  const std::string e = error_of([] { parse_budget("huge"); });
  EXPECT_NE(e.find("invalid --budget 'huge'"), std::string::npos) << e;
  EXPECT_NE(e.find("rtx-4090"), std::string::npos) << e;
  EXPECT_NE(error_of([] { parse_budget("16XB"); }).find("unknown unit"), std::string::npos);
  EXPECT_NE(error_of([] { parse_budget("0GB"); }).find("above zero"), std::string::npos);
}

TEST(MakePlan, Qwen3_8BAt128kIn16GiB) {
  const ModelShape m = preset_shape(find_preset("qwen3-8b"));
  PlanOptions o;
  o.context = 131072;
  o.budget = parse_budget("16GiB");
  const Plan p = make_plan(m, format::KVPolicy::parse("k=q8,v=q8"), o);
  const uint64_t kv = 78336ull * 131072 + 9437184;  // pages + f32 tail
  EXPECT_EQ(p.kv_bytes, kv);
  EXPECT_EQ(p.total_bytes, m.weight_bytes + kGiB + kv);
  const uint64_t room = 16 * kGiB - m.weight_bytes - kGiB;
  EXPECT_EQ(p.sessions, static_cast<int64_t>(room / kv));
  EXPECT_EQ(p.sessions, 1);
  EXPECT_EQ(p.headroom, static_cast<int64_t>(16 * kGiB) - static_cast<int64_t>(p.total_bytes));
  EXPECT_GT(p.headroom, 0);
  // Whole pages of 78,336 x 32 bytes after the tail.
  EXPECT_EQ(p.max_context, static_cast<int64_t>((room - 9437184) / (78336 * 32) * 32));
  // Without a context the model's native one is used.
  o.context = 0;
  EXPECT_EQ(make_plan(m, format::KVPolicy(), o).context, 32768);
}

TEST(MakePlan, BudgetSmallerThanTheWeightsIsAnError) {
  const ModelShape m = preset_shape(find_preset("llama-3.1-70b"));
  PlanOptions o;
  o.budget = parse_budget("24GB");
  const std::string e = error_of([&] { make_plan(m, format::KVPolicy(), o); });
  EXPECT_NE(e.find("budget 22.35 GiB cannot hold llama-3.1-70b's weights (39.83 GiB)"),
            std::string::npos)
      << e;
  EXPECT_FALSE(kv_room(m, 24000000000u, kDefaultOverhead).has_value());
}

}  // namespace
}  // namespace kvpack::plan
