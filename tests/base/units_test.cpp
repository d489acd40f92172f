#include "base/units.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace kvpack {
namespace {

TEST(Units, ParsesBinaryAndDecimalSizes) {
  EXPECT_EQ(parse_bytes("16GiB"), 16ull << 30);
  EXPECT_EQ(parse_bytes("16G"), 16ull << 30);
  EXPECT_EQ(parse_bytes("24GB"), 24'000'000'000ull);
  EXPECT_EQ(parse_bytes("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_bytes("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_bytes("1000"), 1000ull);
  EXPECT_EQ(parse_bytes("2tb"), 2'000'000'000'000ull);
}

TEST(Units, RejectsBadSizesNamingThem) {
  for (const char* bad : {"", "GiB", "16XB", "1.2.3G", "-5G"}) {
    try {
      parse_bytes(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Units, ParsesCounts) {
  EXPECT_EQ(parse_count("4096"), 4096);
  EXPECT_EQ(parse_count("32k"), 32768);
  EXPECT_EQ(parse_count("128K"), 131072);
  EXPECT_EQ(parse_count("1M"), 1 << 20);
  EXPECT_EQ(parse_count("1.5k"), 1536);
  EXPECT_THROW(parse_count("1.3"), Error);
  EXPECT_THROW(parse_count("4q"), Error);
  const std::vector<std::string> repeated = {"0,4k", "16k"};
  EXPECT_EQ(parse_counts(repeated), (std::vector<int64_t>{0, 4096, 16384}));
  EXPECT_EQ(parse_counts(std::vector<std::string>{""}), std::vector<int64_t>{});
  const std::vector<std::string> bad = {"1k,,2k"};
  EXPECT_THROW(parse_counts(bad), Error);
}

TEST(Units, Formats) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536.0 * 1024 * 1024), "1.50 GiB");
  EXPECT_EQ(format_count(32768), "32k");
  EXPECT_EQ(format_count(1 << 20), "1M");
  EXPECT_EQ(format_count(1000), "1000");
}

TEST(Units, ContextsAreBounded) {
  EXPECT_EQ(parse_context("128k", "-c"), 131072);
  EXPECT_EQ(parse_context("16M", "-c"), kMaxContextTokens);
  for (const char* bad : {"0", "16385k", "2000000000", "99999M"}) {
    try {
      parse_context(bad, "-c");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.message(), std::string("-c ") + bad + ": expected 1 to 16M tokens");
    }
  }
  EXPECT_EQ(parse_context("0", "-d", 0), 0);
  const std::vector<std::string> lists = {"1k,4k", "16k"};
  EXPECT_EQ(parse_contexts(lists, "--context"), (std::vector<int64_t>{1024, 4096, 16384}));
  const std::vector<std::string> zero = {"1k,0"};
  EXPECT_THROW(parse_contexts(zero, "--context"), Error);
}

TEST(Units, AllocatedSizesAreBoundedByMemory) {
  ASSERT_GT(physical_memory_bytes(), uint64_t{1} << 26);
  EXPECT_EQ(parse_memory_bytes("64MiB", "--budget"), uint64_t{64} << 20);
  try {
    parse_memory_bytes("1000TiB", "--budget");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("--budget 1000TiB: more than this machine's"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvpack
