// `kvpack bench matmul` through the built binary at toy sizes. Speeds are not checked
// (benchmarks, not timed tests); the report's shape and its derived fields are.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "cli_run.h"

namespace kvpack::model {
namespace {

TEST(BenchMatmulCli, JsonReportsEveryTypeAgainstBandwidthAndPeak) {
  const auto r = testing::run_kvpack(
      "bench matmul --json --mib 1 --cols 512 --prefill-rows 16 --tokens 5 -r 1 -t 2 "
      "--types q4_k,Q8_0,f16,iq4_xs");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["simd_target"].get<std::string>().empty());
  EXPECT_EQ(j["threads"], 2);
  const auto& res = j["results"];
  ASSERT_EQ(res.size(), 4u);
  EXPECT_EQ(res[0]["type"], "Q4_K");
  EXPECT_EQ(res[1]["type"], "Q8_0");
  EXPECT_EQ(res[2]["type"], "F16");
  EXPECT_EQ(res[3]["type"], "IQ4_XS");
  for (const auto& x : res) {
    // A 1 MiB matrix of 512-value rows: whole rows, the bits per weight of the type.
    EXPECT_LE(x["decode_bytes"].get<double>(), 1048576.0);
    EXPECT_GT(x["decode_bytes"].get<double>(), 1048576.0 * 0.99);
    const double gbps = x["decode_gb_per_s"].get<double>();
    EXPECT_NEAR(gbps, x["decode_bytes"].get<double>() / (x["decode_ms"].get<double>() * 1e6),
                gbps * 1e-9);
    EXPECT_NEAR(x["decode_pct_of_bandwidth"].get<double>(),
                100 * gbps / x["bandwidth_gb_per_s"].get<double>(), 1e-6);
    EXPECT_NEAR(x["prefill_gflop_per_s"].get<double>(),
                2.0 * 16 * 512 * 5 / (x["prefill_ms"].get<double>() * 1e6), 1e-6);
    EXPECT_GT(x["peak_gop_per_s"].get<double>(), 0.0);
  }
  EXPECT_NEAR(res[0]["bits_per_weight"].get<double>(), 4.5, 1e-9);
  EXPECT_NEAR(res[1]["bits_per_weight"].get<double>(), 8.5, 1e-9);
  EXPECT_NEAR(res[3]["bits_per_weight"].get<double>(), 4.25, 1e-9);
  EXPECT_EQ(res[0]["peak_kind"], "int8 dot");
  EXPECT_EQ(res[2]["peak_kind"], "f32 fma");
}

TEST(BenchMatmulCli, TableNamesTheTarget) {
  const auto r = testing::run_kvpack(
      "--simd avx2 bench matmul --mib 1 --cols 256 --prefill-rows 8 --tokens 2 -r 1 --types q6_k");
  if (r.status != 0) {  // a CPU without AVX2 refuses the target, as documented
    EXPECT_NE(r.err.find("SIMD target 'avx2' is not available"), std::string::npos) << r.err;
    return;
  }
  EXPECT_NE(r.out.find("SIMD target avx2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Q6_K"), std::string::npos) << r.out;
}

TEST(BenchMatmulCli, BadInputIsAOneLineError) {
  testing::expect_one_line_error("bench matmul --types q4_k,q9_9", "unknown weight type 'q9_9'");
  testing::expect_one_line_error("bench matmul --cols 100", "--cols 100 must be a multiple of 256");
}

}  // namespace
}  // namespace kvpack::model
