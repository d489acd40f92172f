// `kvpack bench cache` at every page size its --page-tokens flag accepts: the op-cost pass
// decodes 1024 tokens into a cache sized for it, which with 16-token pages once held too few
// pages and ended the command with "kv cache full".
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "cli_run.h"

namespace kvpack::testing {
namespace {

TEST(BenchCacheCli, RunsAtEveryPageSize) {
  for (const int page_tokens : {16, 32, 48, 256}) {
    const std::string args =
        "bench cache --json --sessions 2 --prefix 64 --turns 1 --layers 2 --budget 64MiB "
        "--page-tokens " +
        std::to_string(page_tokens);
    SCOPED_TRACE(args);
    const CliResult r = run_kvpack(args);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["config"]["page_tokens"].get<int>(), page_tokens) << r.out.substr(0, 400);
  }
}

}  // namespace
}  // namespace kvpack::testing
