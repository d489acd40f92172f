// `kvpack plan` end to end through the built binary: JSON fields, the overview, error exits.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_run.h"
#include "kvpack/plan.h"
#include "model/gguf_writer.h"
#include "shared_data.h"

namespace kvpack::plan {
namespace {

using testing::run_kvpack;

// An error exit: non-zero status, nothing on stdout, one line "kvpack: error: ..." on stderr
// that contains `needle`.
TEST(PlanCli, Qwen3_8BJson) {
  const auto r =
      run_kvpack("plan --preset qwen3-8b --kv k=q8,v=q8 --context 131072 --budget 16GiB --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["name"], "qwen3-8b");
  EXPECT_EQ(j["model"]["layers"], 36);
  EXPECT_EQ(j["model"]["kv_heads"], 8);
  EXPECT_EQ(j["model"]["head_dim_k"], 128);
  EXPECT_EQ(j["context"], 131072);
  EXPECT_EQ(j["budget"]["bytes"], 17179869184ull);
  ASSERT_EQ(j["plans"].size(), 1u);
  const auto& p = j["plans"][0];
  EXPECT_EQ(p["policy"], "k=q8,v=q8");
  EXPECT_EQ(p["bytes_per_token"]["full"], 78336);
  EXPECT_EQ(p["bytes_per_token"]["sliding"], 0);
  EXPECT_EQ(p["kv_bytes"], 78336ull * 131072 + 9437184);
  const uint64_t weights = p["weight_bytes"];
  EXPECT_NEAR(static_cast<double>(weights), 8.19e9 * 4.85 / 8, 1.0);
  EXPECT_EQ(p["overhead_bytes"], 1ull << 30);
  EXPECT_EQ(p["total_bytes"], weights + (1ull << 30) + p["kv_bytes"].get<uint64_t>());
  EXPECT_EQ(p["headroom_bytes"], 17179869184ll - p["total_bytes"].get<int64_t>());
  EXPECT_EQ(p["fits"], true);
  EXPECT_EQ(p["sessions"], 1);
  const uint64_t room = 17179869184ull - weights - (1ull << 30) - 9437184;
  EXPECT_EQ(p["max_context"], room / (78336 * 32) * 32);
  EXPECT_EQ(p["max_context_exceeds_model"], true);  // more than the 131,072 YaRN allows
}

TEST(PlanCli, SeveralPoliciesAndLlamaFlags) {
  const auto r = run_kvpack(
      "plan --preset gemma-3-12b --kv k=f16,v=f16 -ctk q8 -ctv q4 --context 128k --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["plans"].size(), 2u);
  EXPECT_EQ(j["plans"][1]["policy"], "k=q8,v=q4");
  EXPECT_EQ(j["plans"][0]["bytes_per_token"]["full"], 65536);
  EXPECT_EQ(j["plans"][0]["bytes_per_token"]["sliding"], 327680);
  EXPECT_EQ(j["model"]["sliding_layers"].size(), 40u);
  EXPECT_TRUE(j["budget"].is_null());
  EXPECT_FALSE(j["plans"][0].contains("max_context"));
}

TEST(PlanCli, OverviewPrintsTheFormulaAndEveryPreset) {
  const auto r = run_kvpack("plan");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("bytes/token = sum over KV layers"), std::string::npos);
  for (const char* s : {"f16/f16", "q8/q8", "q4/q8", "q8/q4", "turbo4/turbo4", "turbo3/turbo3",
                        "Qwen3-8B", "Gemma-3-12B", "Llama-3.1-8B", "Mistral-7B-v0.3",
                        "gpu-16gb (16.00 GiB)", "gpu-24gb (24.00 GiB)", "gpu-32gb (32.00 GiB)"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
  EXPECT_NE(r.out.find("147,456"), std::string::npos);  // Qwen3-8B f16/f16 bytes per token
  EXPECT_NE(r.out.find("78,336"), std::string::npos);   // ... q8/q8
  const auto j = nlohmann::json::parse(run_kvpack("plan --json").out);
  EXPECT_EQ(j["budgets"].size(), 3u);
  EXPECT_EQ(j["policies"].size(), 6u);
  EXPECT_EQ(j["models"].size(), presets().size());
}

TEST(PlanCli, ReadsAGguf) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const auto r = run_kvpack("plan -m '" + path.string() + "' --budget 1GiB --overhead 0 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["layers"], 5);
  EXPECT_EQ(j["model"]["kv_heads"], 4);
  EXPECT_EQ(j["model"]["head_dim_k"], 8);
  EXPECT_EQ(j["plans"][0]["weight_bytes"], 292800 * 4);
  EXPECT_EQ(j["plans"][0]["bytes_per_token"]["full"], 5 * 4 * 8 * 2 * 2);  // f16
}

TEST(PlanCli, ErrorsAreOneLine) {
  testing::expect_one_line_error("plan --preset qwen9-1t", "unknown preset 'qwen9-1t'");
  testing::expect_one_line_error("plan --preset qwen3-8b --kv k=q9", "unknown KV format 'q9'");
  testing::expect_one_line_error("plan --preset qwen3-8b -ctk nope", "unknown KV format 'nope'");
  testing::expect_one_line_error("plan --preset llama-3.1-70b --budget 24GB",
                                 "cannot hold llama-3.1-70b's weights");
  testing::expect_one_line_error("plan --preset qwen3-8b --budget lots", "invalid --budget 'lots'");
  testing::expect_one_line_error("plan --preset qwen3-8b --context many", "invalid count 'many'");
  testing::expect_one_line_error("plan -m /nonexistent/x.gguf", "/nonexistent/x.gguf: cannot open");
  testing::expect_one_line_error("plan --context 4k", "--context needs a model");
  const std::filesystem::path tmp = kvpack::testing::temp_path("plan_cli_truncated.gguf");
  const std::vector<uint8_t> bytes =
      model::GgufWriter().set("general.architecture", model::gguf_string("llama")).bytes();
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size() - 3));
  }
  testing::expect_one_line_error("plan -m '" + tmp.string() + "'", "truncated");
  std::filesystem::remove(tmp);
}

}  // namespace
}  // namespace kvpack::plan
