// `kvpack formats`: the format registry as a table or JSON.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "base/json_text.h"
#include "base/table.h"
#include "commands.h"
#include "kvpack/format.h"

namespace kvpack::cli {
namespace {

constexpr int kDims[] = {64, 128, 256};

std::string roles_text(const format::FormatInfo& f) {
  std::string s;
  if (f.supports(format::Role::K)) s += "K";
  if (f.supports(format::Role::V)) s += s.empty() ? "V" : ",V";
  return s;
}

void run_formats(bool json, int page_tokens) {
  if (json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& f : format::all_formats()) {
      nlohmann::ordered_json bits = nlohmann::ordered_json::object();
      for (int d : kDims) bits[std::to_string(d)] = f.bits_per_value(d, page_tokens);
      nlohmann::ordered_json roles = nlohmann::ordered_json::array();
      if (f.supports(format::Role::K)) roles.push_back("K");
      if (f.supports(format::Role::V)) roles.push_back("V");
      nlohmann::ordered_json aliases = nlohmann::ordered_json::array();
      std::string_view rest = f.aliases;
      while (!rest.empty()) {
        const size_t sp = rest.find(' ');
        aliases.push_back(std::string(rest.substr(0, sp)));
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
      }
      out.push_back({{"name", f.name},
                     {"aliases", aliases},
                     {"roles", roles},
                     {"bits_per_value", bits},
                     {"page_tokens", page_tokens},
                     {"description", f.description}});
    }
    std::printf("%s\n", json_text(out).c_str());
    return;
  }
  Table t({"format", "aliases", "roles", "bits@64", "bits@128", "bits@256", "description"});
  t.align_left(0).align_left(1).align_left(2).align_left(6);
  for (const auto& f : format::all_formats()) {
    std::vector<std::string> row = {std::string(f.name), std::string(f.aliases), roles_text(f)};
    for (int d : kDims) row.push_back(fmt::format("{:.5g}", f.bits_per_value(d, page_tokens)));
    row.emplace_back(f.description);
    t.add_row(std::move(row));
  }
  std::printf("%s", t.to_text().c_str());
  std::printf(
      "\nbits per value include scales and norms, at %d-token pages; roles: which of K "
      "and V the format can store.\n",
      page_tokens);
}

}  // namespace

void add_formats_command(CLI::App& app) {
  struct Options {
    bool json = false;
    int page_tokens = 32;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("formats", "List the KV storage formats");
  cmd->add_flag("--json", opt->json, "Print JSON instead of a table");
  cmd->add_option("--page-tokens", opt->page_tokens, "Tokens per page (affects per-page metadata)")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->callback([opt] { run_formats(opt->json, opt->page_tokens); });
}

}  // namespace kvpack::cli
