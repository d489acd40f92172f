// tools/passkey-grid.py (one table from several `eval passkey` reports) on reports written by
// render_passkey itself, so a change of the report's JSON that the script does not follow fails
// here: the union of a policy's cells over reports, the pairing with a baseline from another
// report, and the refusals (two answers to one trial, no baseline).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "eval/passkey.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::eval {
namespace {

PolicyPasskey row(format::FormatId k, double bytes, std::vector<PasskeyCell> cells) {
  PolicyPasskey p;
  p.policy = format::KVPolicy(k, k);
  p.bytes_per_token = bytes;
  p.bits_per_value = bytes / 256;
  p.cells = std::move(cells);
  for (PasskeyCell& c : p.cells) {
    for (const PasskeyTrial& t : c.trials) c.correct += t.correct;
    p.total += static_cast<int>(c.trials.size());
    p.correct += c.correct;
  }
  return p;
}

// Writes a report holding `rows` as render_passkey writes it; returns its path.
std::string write_report(const std::string& name, std::vector<PolicyPasskey> rows) {
  PasskeyReport r;
  r.model_name = "test";
  r.rows = std::move(rows);
  const std::string path = testing::temp_path(name);
  std::ofstream(path, std::ios::binary) << render_passkey(r, "kvpack eval passkey ...").json.dump();
  return path;
}

struct ToolResult {
  int status;
  std::string out, err;
};

ToolResult run_tool(const std::string& args) {
  const std::string out = testing::temp_path("grid.out"), err = testing::temp_path("grid.err");
  const std::string cmd = testing::python3() + " '" + KVPACK_SOURCE_DIR +
                          "/tools/passkey-grid.py' " + args + " > '" + out + "' 2> '" + err + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, testing::read_text(out), testing::read_text(err)};
}

// The cells of the table row whose first cell is `label`.
std::vector<std::string> table_row(const std::string& table, const std::string& label) {
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> cells;
    std::istringstream parts(line);
    std::string cell;
    std::getline(parts, cell, '|');  // before the first bar
    while (std::getline(parts, cell, '|')) {
      const size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (!cells.empty() && cells[0] == label) return cells;
  }
  ADD_FAILURE() << "no row " << label << " in:\n" << table;
  return {};
}

class PasskeyGridTool : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system((testing::python3() + " -c '' > /dev/null 2>&1").c_str()) != 0) {
      if (testing::shared_required()) FAIL() << testing::python3() << " does not run";
      GTEST_SKIP() << "SKIPPED (KVPACK_REQUIRE_SHARED is not set): no " << testing::python3();
    }
    // The f16 run at 16k alone (as docs/data keeps it), then q8/q8 over two runs: 16k depth 10
    // in both (one trial repeated with the same answer), 8k only in the second.
    base_ = write_report(
        "base.json", {row(format::FormatId::f16, 4096,
                          {{16384, 10, 0, {{11111, " 11111", true}, {22222, " 22222.", true}}, 0},
                           {16384, 90, 0, {{33333, " 3333", false}}, 0}})});
    first_ = write_report(
        "first.json", {row(format::FormatId::q8, 2176,
                           {{16384, 10, 0, {{11111, " 11111.", true}, {22222, " 22223", false}}, 0},
                            {16384, 90, 0, {{33333, " 33333", true}}, 0}})});
    second_ = write_report(
        "second.json",
        {row(format::FormatId::q8, 2176,
             {{8192, 50, 0, {{44444, " 44444", true}}, 0},
              {16384, 10, 0, {{11111, " 11111.", true}, {55555, " 55555", true}}, 0}})});
  }
  std::string base_, first_, second_;
};

TEST_F(PasskeyGridTool, JoinsRunsAndPairsWithTheBaseline) {
  const ToolResult r = run_tool("'" + base_ + "' '" + first_ + "' '" + second_ + "' --depths");
  ASSERT_EQ(r.status, 0) << r.err;
  // Columns: K/V, B/token, bits, 8k, 16k, unlike f16 at 8k, at 16k, right->wrong / wrong->right.
  const std::vector<std::string> q8 = table_row(r.out, "q8/q8");
  ASSERT_EQ(q8.size(), 8u) << r.out;
  EXPECT_EQ(q8[1], "2176.0");
  EXPECT_EQ(q8[3], "1/1");     // 8k: the second run's one trial
  EXPECT_EQ(q8[4], "3/4");     // 16k: 11111 (once), 22222 wrong, 33333, 55555
  EXPECT_EQ(q8[5], "-");       // the baseline never ran 8k
  EXPECT_EQ(q8[6], "2 of 3");  // 22222 and 33333 differ; 55555 has no baseline trial
  EXPECT_EQ(q8[7], "1 / 1");   // 22222 right -> wrong, 33333 wrong -> right
  const std::vector<std::string> f16 = table_row(r.out, "f16/f16");
  ASSERT_EQ(f16.size(), 8u);
  EXPECT_EQ(f16[4], "2/3");
  EXPECT_EQ(f16[6], "0 of 3");
  EXPECT_EQ(f16[7], "-");
  // By depth: 16k at 10% holds q8/q8's three distinct trials.
  const size_t at16 = r.out.find("16k by depth");
  ASSERT_NE(at16, std::string::npos) << r.out;
  const std::vector<std::string> d16 = table_row(r.out.substr(at16), "q8/q8");
  ASSERT_EQ(d16.size(), 3u);
  EXPECT_EQ(d16[1], "2/3");
  EXPECT_EQ(d16[2], "1/1");
}

TEST_F(PasskeyGridTool, RefusesTwoAnswersToOneTrialAndAMissingBaseline) {
  const std::string other = write_report(
      "other.json",
      {row(format::FormatId::q8, 2176, {{16384, 10, 0, {{11111, " 11112", false}}, 0}})});
  ToolResult r = run_tool("'" + base_ + "' '" + first_ + "' '" + other + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("11112"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  r = run_tool("'" + first_ + "' '" + second_ + "'");  // no f16 run
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no report holds the baseline k=f16,v=f16"), std::string::npos) << r.err;

  r = run_tool("'" + base_ + "' '" + first_ + "' --baseline k=q8,v=q8");  // another baseline
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(table_row(r.out, "f16/f16")[4], "2 of 3");  // one length: 16k, then unlike
}

}  // namespace
}  // namespace kvpack::eval
