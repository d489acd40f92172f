// `kvpack eval` through the built binary: JSON on stdout, report files with -o, and one-line
// errors (a passkey length beyond the context, a missing budget).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli_run.h"
#include "shared_data.h"

namespace kvpack::eval {
namespace {

std::string stories_args(const std::filesystem::path& model, const std::filesystem::path& text) {
  return "-m '" + model.string() + "' -f '" + text.string() + "' -t 2 -q";
}

TEST(EvalCli, PplJson) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const auto r = kvpack::testing::run_kvpack(
      "eval ppl " + stories_args(model, text) +
      " -c 64 --chunks 2 --baseline k=f32,v=f32 --kv k=f32,v=f32 -ctk q8 -ctv q8 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["eval"], "ppl");
  EXPECT_EQ(j["chunks"], 2);
  EXPECT_EQ(j["scored_per_chunk"], 31);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][0]["baseline"], true);
  EXPECT_EQ(j["results"][1]["kld_mean"], 0.0);  // f32 against itself
  EXPECT_EQ(j["results"][2]["policy"], "k=q8,v=q8");
  EXPECT_GT(j["results"][2]["kld_mean"].get<double>(), 0.0);
}

TEST(EvalCli, AttentionWritesTheReportFiles) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const auto dir = std::filesystem::path(kvpack::testing::temp_path("eval_cli_attention"));
  std::filesystem::create_directories(dir);
  const auto r = kvpack::testing::run_kvpack("eval attention " + stories_args(model, text) +
                                             " -c 96 --long-distance 32 --kv k=q4,v=q8 -o '" +
                                             (dir / "att").string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("most sensitive layers"), std::string::npos);
  std::ifstream md(dir / "att.md");
  const std::string text_md((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_NE(text_md.find("](att.svg)"), std::string::npos);
  EXPECT_NE(text_md.find("kvpack eval attention"), std::string::npos);  // the command
  EXPECT_TRUE(std::filesystem::exists(dir / "att.svg"));
  const auto j = nlohmann::json::parse(std::ifstream(dir / "att.json"));
  EXPECT_EQ(j["results"][0]["layers"].size(), 5u);
  std::filesystem::remove_all(dir);
}

TEST(EvalCli, PolicyJson) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const auto r = kvpack::testing::run_kvpack("eval policy " + stories_args(model, text) +
                                             " --bits 7 -c 64 --chunks 1 --formats f16,q8,q4 "
                                             "--compare 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_LE(j["searched"]["bits_per_value"].get<double>(), 7.0);
  EXPECT_EQ(j["measured"].size(), 2u);  // the searched policy and q4/q4 (q8/q4 is 8 bits)
  EXPECT_EQ(j["sensitivity"]["formats"].size(), 3u);
}

TEST(EvalCli, ErrorsAreOneLine) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const std::string m = "-m '" + model.string() + "'";
  kvpack::testing::expect_one_line_error("eval passkey " + m + " --lengths 1k,4k",
                                         "passkey length 4096 does not fit");
  kvpack::testing::expect_one_line_error("eval passkey " + m + " --depths 50,120",
                                         "--depths: '120'");
  kvpack::testing::expect_one_line_error("eval policy " + stories_args(model, text),
                                         "exactly one of --bits and --budget");
  kvpack::testing::expect_one_line_error("eval ppl " + stories_args(model, text) + " -c 1000000",
                                         "fewer than one chunk");
  kvpack::testing::expect_one_line_error(
      "eval ppl " + stories_args(model, text) + " --kv k=q8,v=kivi2", "kivi2");
  kvpack::testing::expect_one_line_error(
      "eval passkey " + m + " --lengths 200 --baseline-json /nonexistent/base.json",
      "cannot read the text file '/nonexistent/base.json'");
  kvpack::testing::expect_one_line_error(
      "eval passkey " + m +
          " --lengths 200 --trials 1 --depths 50 --kv k=q8,v=q8 --baseline-json '" + text.string() +
          "'",
      "is not JSON");
}

// A split grid: the baseline's answers from one run's JSON pair with another run's policies.
TEST(EvalCli, PasskeyPairsWithABaselineFromAnEarlierRun) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const std::string m = "-m '" + model.string() + "' --lengths 200 --depths 0,100 --trials 2";
  const auto base = kvpack::testing::run_kvpack("eval passkey " + m + " --kv k=f16,v=f16 --json");
  ASSERT_EQ(base.status, 0) << base.err;
  const auto jb = nlohmann::json::parse(base.out);
  EXPECT_EQ(jb["baseline"], "k=f16,v=f16");  // in the same run: paired with itself
  EXPECT_EQ(jb["results"][0]["vs_baseline"]["differ"], 0);
  const std::string path = kvpack::testing::temp_path("passkey_base.json");
  {
    std::ofstream f(path);
    f << base.out;
  }
  const auto r = kvpack::testing::run_kvpack("eval passkey " + m +
                                             " --kv k=q8,v=q8 --json --baseline-json " + path);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["baseline_source"], path);
  EXPECT_EQ(j["results"][0]["vs_baseline"]["compared"], 4);
}

}  // namespace
}  // namespace kvpack::eval
