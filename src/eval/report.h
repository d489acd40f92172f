// An eval report in every form it is read in: a table for the terminal, Markdown, JSON and an
// SVG chart of quality against bytes per token. Each eval (perplexity, passkey, attention,
// policy) renders its result into one; `-o PREFIX` writes PREFIX.md, PREFIX.json, PREFIX.svg.
#pragma once

#include <nlohmann/json.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/svg_chart.h"

namespace kvpack::eval {

// Markdown text that write_report replaces by the chart's file name (e.g. "![chart](@CHART@)").
inline constexpr std::string_view kChartLink = "@CHART@";

struct Report {
  std::string text;      // for the terminal (plain tables)
  std::string markdown;  // the same content as Markdown, with the command that made it
  nlohmann::ordered_json json;
  Chart chart;
};

// The three files `-o PREFIX` writes: PREFIX.md, PREFIX.json, PREFIX.svg.
std::vector<std::string> report_paths(const std::string& prefix);

// Checks before an eval runs that the three files can be written and none is one of `inputs`
// (check_output_path), so a bad -o fails in a second, not after the whole evaluation.
void check_report_paths(const std::string& prefix, std::span<const std::string> inputs);

// Writes the three files and returns their paths: all or none (base/output_file.h), with the
// JSON valid for any strings in it (base/json_text.h). Throws Error naming a file it cannot
// write; the files are then as they were.
std::vector<std::string> write_report(const std::string& prefix, const Report& report);

// Number formats shared by the reports: KLD-like small positive values ("0", "3.21e-05"),
// percentages ("99.61%"), and fixed decimals.
std::string format_small(double v);
std::string format_percent(double fraction, int decimals = 2);

}  // namespace kvpack::eval
