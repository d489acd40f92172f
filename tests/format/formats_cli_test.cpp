// `kvpack formats --json` reports the grid formats' bits per value as the layouts define them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "shared_data.h"

namespace kvpack::format {
namespace {

// The kvpack binary: KVPACK_BIN (set by ctest), else beside this test's build folder.
std::string kvpack_path() {
  if (std::getenv("KVPACK_BIN") != nullptr) return testing::kvpack_binary();
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto guess = self.parent_path().parent_path() / "kvpack";
  return !ec && std::filesystem::exists(guess) ? guess.string() : testing::kvpack_binary();
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  const int status = pclose(p);
  EXPECT_EQ(status, 0) << command;
  return out;
}

TEST(FormatsCli, JsonReportsGridFormatBits) {
  const std::string text = run(kvpack_path() + " formats --json");
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(json.is_array()) << text;
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& f : json) by_name[f.at("name").get<std::string>()] = f;
  // At the default 32-token pages, d = 128: codes plus f16 metadata.
  const std::pair<const char*, double> expected[] = {
      {"q8", 8.5}, {"q4", 4.5}, {"q4a", 5.0}, {"kivi4", 5.0}, {"kivi2", 3.0}, {"fp8", 8.125}};
  for (const auto& [name, bits] : expected) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(by_name[name].at("page_tokens").get<int>(), 32);
    EXPECT_DOUBLE_EQ(by_name[name].at("bits_per_value").at("128").get<double>(), bits) << name;
  }
  EXPECT_EQ(by_name["q8"].at("aliases"), nlohmann::json::array({"q8_0"}));
  EXPECT_EQ(by_name["q4a"].at("aliases"), nlohmann::json::array({"q4_1"}));
  EXPECT_EQ(by_name["kivi2"].at("roles"), nlohmann::json::array({"K"}));
}

}  // namespace
}  // namespace kvpack::format
