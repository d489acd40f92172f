// Fixtures of the bad-input CLI tests: scratch folders, shell quoting, and GGUF copies whose
// metadata a test changes (a hostile general.name, fewer layers than tensors).
#pragma once

#include <filesystem>
#include <string>

#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace kvpack::testing {

// A fresh folder under the test temp dir, removed with everything in it at the end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// `s` single-quoted for the shell, whatever bytes it holds.
std::string shell_quote(const std::string& s);

// Every metadata key and tensor of `f` in a writer (tensor data copied), to change and write.
model::GgufWriter copy_gguf(const model::GgufFile& f);

// A name built to attack a terminal and a JSON writer: a clear-screen and a colour sequence, a
// newline followed by a forged error line, a right-to-left override, a NUL, and bytes that
// are not UTF-8.
std::string hostile_name();

// True when `s` holds a byte that could drive a terminal: C0 controls other than newline and
// tab, DEL, or ESC.
bool has_raw_controls(const std::string& s);

// The count of entries in `dir` whose name starts with ".kvpack-" (left-over temporary files).
int temp_files_in(const std::filesystem::path& dir);

}  // namespace kvpack::testing
