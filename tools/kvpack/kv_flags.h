// The K/V policy flags shared by every subcommand that takes them: --kv (repeatable where a
// command compares policies) and llama.cpp's -ctk / -ctv.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "kvpack/format.h"

namespace kvpack::cli {

struct KvFlags {
  std::vector<std::string> kv;
  std::string ctk;
  std::string ctv;

  // Adds --kv, --cache-type-k and --cache-type-v to cmd (-ctk / -ctv reach them through
  // rewrite_llama_flags). `repeatable`: --kv may be
  // given several times (one policy each).
  void add_to(CLI::App* cmd, bool repeatable, const std::string& default_text = "k=f16,v=f16");
  // The parsed policies in command-line order; -ctk/-ctv form one more. `fallback` when none.
  std::vector<format::KVPolicy> policies(const std::vector<format::KVPolicy>& fallback) const;
};

// argv with llama.cpp's single-dash -ctk / -ctv (and -ctk=X) spelled --cache-type-k / -v, which
// CLI11 can register; main() parses the result.
std::vector<std::string> rewrite_llama_flags(int argc, const char* const* argv);

}  // namespace kvpack::cli
