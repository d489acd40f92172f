#include "cli_fixtures.h"

#include <gtest/gtest.h>

#include <span>

#include "cli_run.h"

namespace kvpack::testing {

ScratchDir::ScratchDir(const std::string& name) : dir_(temp_path(name)) {
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(dir_, ec);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

model::GgufWriter copy_gguf(const model::GgufFile& f) {
  model::GgufWriter w(f.alignment(), f.version());
  for (const auto& [key, value] : f.metadata()) w.set(key, value);
  for (const model::GgufTensor& t : f.tensors()) {
    w.add_tensor(t.name, t.shape, static_cast<model::GgmlType>(t.type),
                 std::span<const uint8_t>(t.data, t.bytes));
  }
  return w;
}

std::string hostile_name() {
  return std::string("\x1b[2J\x1b[31mevil\nkvpack: error: forged\xe2\x80\xae") +
         std::string("\0nul", 4) + "\xff\xfe\xc3";
}

bool has_raw_controls(const std::string& s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

int temp_files_in(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    n += e.path().filename().string().rfind(".kvpack-", 0) == 0;
  }
  return n;
}

}  // namespace kvpack::testing
