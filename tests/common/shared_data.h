// Test access to ../shared (models, data, reference vectors). One setting finds it: the
// KVPACK_SHARED environment variable, else the build's default (<source>/../shared). When it is
// absent a test skips loudly with the reason, unless KVPACK_REQUIRE_SHARED=1 (as .ci/run sets),
// in which case the absence is a failure.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace kvpack::testing {

std::filesystem::path shared_dir();
// Empty when the file is missing; `why` then says what was looked for.
std::filesystem::path shared_file(const std::string& relative, std::string* why);
bool shared_required();
// The built kvpack binary (for CLI tests), from KVPACK_BIN set by CTest.
std::string kvpack_binary();

}  // namespace kvpack::testing

// Declares `var` as the path of a shared file, or skips (fails under KVPACK_REQUIRE_SHARED=1).
#define KVPACK_SHARED_FILE(var, relative)                               \
  std::filesystem::path var;                                            \
  do {                                                                  \
    std::string why_missing_;                                           \
    var = ::kvpack::testing::shared_file(relative, &why_missing_);      \
    if (var.empty()) {                                                  \
      if (::kvpack::testing::shared_required()) FAIL() << why_missing_; \
      GTEST_SKIP() << "SKIPPED (shared data absent): " << why_missing_; \
    }                                                                   \
  } while (0)
