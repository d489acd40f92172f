// `kvpack demo` (the second part of `make run`) through the built binary: the probe model
// retrieves the passkey through every default policy, the flags reach the prompt, and a missing
// model is a one-line error.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "cli_run.h"
#include "probe_model.h"

namespace kvpack::eval {
namespace {

// The table rows of the demo's output whose first cell is `label`.
std::string row(const std::string& out, const std::string& label) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(label + " ", 0) == 0) return line;
  }
  return "";
}

TEST(DemoCli, DefaultPoliciesRetrieveTheKey) {
  KVPACK_PROBE_MODEL(model);
  const auto r = kvpack::testing::run_kvpack("demo -m '" + model.string() + "' -t 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("4096 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("key 79304 at depth 50%"), std::string::npos) << r.out;
  for (const char* label : {"f16/f16", "q8/q8", "q4/q8", "turbo4/turbo4", "turbo3/turbo3"}) {
    const std::string line = row(r.out, label);
    EXPECT_NE(line.find("\"79304\"  yes"), std::string::npos) << label << "\n" << r.out;
    EXPECT_NE(line.find(" / "), std::string::npos) << line;  // active / reserved
  }
  EXPECT_NE(row(r.out, "f16/f16").find("2048.0"), std::string::npos) << r.out;
  EXPECT_NE(row(r.out, "q8/q8").find("1088.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5 of 5 policies retrieved the key"), std::string::npos) << r.out;
}

TEST(DemoCli, FlagsChooseThePromptAndPolicies) {
  KVPACK_PROBE_MODEL(model);
  const auto r = kvpack::testing::run_kvpack("demo -m '" + model.string() +
                                             "' -l 1k -d 25 --key 12345 --kv k=q8,v=q4 -t 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("prompt: 1024 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("key 12345 at depth 25%"), std::string::npos) << r.out;
  EXPECT_NE(row(r.out, "q8/q4").find("\"12345\"  yes"), std::string::npos) << r.out;
  EXPECT_EQ(row(r.out, "f16/f16"), "") << r.out;
}

TEST(DemoCli, ErrorsAreOneLine) {
  // The default model path is relative to the repository root: run from a folder without it.
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(::testing::TempDir());
  for (const auto& [args, part] : std::vector<std::pair<std::string, std::string>>{
           {"demo", "models/probe.gguf: no such file"},
           {"demo -m /nonexistent/probe.gguf", "pass -m FILE"},
           {"demo -m '" + kvpack::testing::probe_model_path().string() + "' -l 8k", "does not fit"},
           {"demo -m '" + kvpack::testing::probe_model_path().string() + "' --key 42", "5 digits"},
       }) {
    kvpack::testing::expect_one_line_error(args, part);
  }
  std::filesystem::current_path(cwd);
}

}  // namespace
}  // namespace kvpack::eval
