// The repository's probe model (models/probe.gguf, models/README.md). It is committed with the
// code, so tests that use it never skip: a missing file is a failure.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

namespace kvpack::testing {

inline std::filesystem::path probe_model_path() {
  return std::filesystem::path(KVPACK_SOURCE_DIR) / "models" / "probe.gguf";
}

}  // namespace kvpack::testing

// Declares `var` as the probe model's path, or fails the test when the file is missing.
#define KVPACK_PROBE_MODEL(var)                                            \
  const std::filesystem::path var = ::kvpack::testing::probe_model_path(); \
  ASSERT_TRUE(std::filesystem::exists(var)) << var << " is missing (models/README.md)"
