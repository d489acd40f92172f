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

  // Adds --kv, -ctk/--cache-type-k and -ctv/--cache-type-v to cmd. `repeatable`: --kv may be
  // given several times (one policy each).
  void add_to(CLI::App* cmd, bool repeatable, const std::string& default_text = "k=f16,v=f16");
  // The parsed policies in command-line order; -ctk/-ctv form one more. `fallback` when none.
  std::vector<format::KVPolicy> policies(const std::vector<format::KVPolicy>& fallback) const;
};

}  // namespace kvpack::cli
