// Whole files for tests: expected outputs, reference vectors, models to corrupt. A file that
// cannot be read fails the test (and reads as empty).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace kvpack::testing {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    ADD_FAILURE() << "cannot read " << p;
    return "";
  }
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
  const std::string text = read_text(p);
  return {text.begin(), text.end()};
}

}  // namespace kvpack::testing
