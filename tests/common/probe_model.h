// The repository's probe model (models/probe.gguf, models/README.md). It is committed with the
// code, so tests that use it never skip: a missing file is a failure.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

namespace kvpack::testing {

inline std::filesystem::path probe_model_path(const char* file = "probe.gguf") {
  return std::filesystem::path(KVPACK_SOURCE_DIR) / "models" / file;
}

}  // namespace kvpack::testing

// Declares `var` as the probe model's path, or fails the test when the file is missing.
#define KVPACK_PROBE_MODEL(var)                                            \
  const std::filesystem::path var = ::kvpack::testing::probe_model_path(); \
  ASSERT_TRUE(std::filesystem::exists(var)) << var << " is missing (models/README.md)"

// The same for the long-context probe model (models/probe16.gguf, card models/probe16.md).
#define KVPACK_PROBE16_MODEL(var)                                                        \
  const std::filesystem::path var = ::kvpack::testing::probe_model_path("probe16.gguf"); \
  ASSERT_TRUE(std::filesystem::exists(var)) << var << " is missing (models/probe16.md)"
