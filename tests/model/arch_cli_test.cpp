// Every command a user points at a model works on every architecture's fixture
// (../shared/models/arch): inspect, plan -m, run (reproducing llama.cpp's greedy tokens from the
// prompt's text), eval ppl, eval passkey and bench decode.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "arch_fixture.h"
#include "cli_run.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using testing::ArchGold;
using testing::RouteFollower;

class ArchCli : public ::testing::TestWithParam<const char*> {};

// Appended piecewise: g++ 12 warns falsely (-Wrestrict) on "literal" + std::string chains.
std::string quoted(const std::filesystem::path& p) {
  std::string q = "'";
  q += p.string();
  q += "'";
  return q;
}

// `kvpack run --temp 0` from the prompt's text: kvpack's tokenization of it is llama.cpp's, and
// the text printed is the prompt and llama.cpp's greedy tokens for as long as an in-process
// greedy run agrees with them (greedy_agreement: until a near-tie where the two may part; the
// CLI's router follows nobody, so for a mixture of experts until kvpack first routes otherwise).
TEST_P(ArchCli, RunReproducesGreedyTokens) {
  const std::string arch = GetParam();
  KVPACK_SHARED_FILE(model_path, fmt::format("models/arch/models/{}-f16.gguf", arch));
  KVPACK_SHARED_FILE(gold_path, fmt::format("models/arch/gold/{}-f16.prose.json", arch));
  KVPACK_SHARED_FILE(prompt, "models/arch/prompts/prose.txt");
  const ArchGold gold = testing::read_arch_gold(gold_path.string());
  const auto model = Model::load(model_path.string());
  const Tokenizer& tok = *model->tokenizer();
  ASSERT_EQ(tok.encode(gold.prompt, true, true), gold.prompt_ids);
  const size_t agreed = testing::greedy_agreement(*model, gold, RouteFollower::Mode::observe);

  const auto r = kvpack::testing::run_kvpack("run -m " + quoted(model_path) + " -f " +
                                             quoted(prompt) + " -n 32 --temp 0 -c 512 -t 2");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<int32_t> ids = gold.prompt_ids;
  ids.insert(ids.end(), gold.gen_ids.begin(), gold.gen_ids.begin() + agreed);
  const std::string want = tok.decode(ids);
  EXPECT_EQ(r.out.substr(0, want.size()), want) << agreed << " tokens agreed in process";
  std::printf("[ %s ] kvpack run printed llama.cpp's first %zu tokens\n", arch.c_str(), agreed);
}

// The other commands complete on every architecture, with sane output.
TEST_P(ArchCli, EveryCommandRuns) {
  const std::string arch = GetParam();
  KVPACK_SHARED_FILE(model_path, fmt::format("models/arch/models/{}-f16.gguf", arch));
  KVPACK_SHARED_FILE(prompt, "models/arch/prompts/code.txt");
  std::string m = " -m ";
  m += quoted(model_path);

  auto r = kvpack::testing::run_kvpack("inspect --no-tensors " + quoted(model_path));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("general.architecture"), std::string::npos);

  r = kvpack::testing::run_kvpack("plan --json" + m);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto plan = nlohmann::json::parse(r.out);
  EXPECT_EQ(plan["model"]["arch"], arch);
  const bool gemma = arch.starts_with("gemma");
  EXPECT_EQ(plan["model"]["window"], gemma ? 64 : 0);

  r = kvpack::testing::run_kvpack("eval ppl -q --json -t 2 -c 64 --kv k=f16,v=f16 --kv k=q8,v=q8" +
                                  m + " -f " + quoted(prompt));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto ppl = nlohmann::json::parse(r.out);
  ASSERT_EQ(ppl["results"].size(), 3u) << r.out;  // the baseline, then both policies
  for (const auto& p : ppl["results"]) EXPECT_TRUE(std::isfinite(p["ppl"].get<double>())) << p;

  r = kvpack::testing::run_kvpack(
      "eval passkey -q --json -t 2 --lengths 256 --depths 50 --trials 1 --kv k=q8,v=q8" + m);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["eval"], "passkey") << r.out;

  // One depth past the window: each row also measures the read bandwidth (~1 s).
  r = kvpack::testing::run_kvpack("bench decode --json -t 2 -d 96 -n 2 -r 1" + m);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto bench = nlohmann::json::parse(r.out);
  ASSERT_EQ(bench["results"].size(), 1u);
  for (const auto& row : bench["results"]) EXPECT_GT(row["tokens_per_s"].get<double>(), 0) << row;
}

INSTANTIATE_TEST_SUITE_P(Arch, ArchCli,
                         ::testing::Values("llama", "qwen2", "qwen3", "qwen3moe", "gemma2",
                                           "gemma3"));

}  // namespace
}  // namespace kvpack::model
