#include "eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "base/json_text.h"
#include "base/output_file.h"

namespace kvpack::eval {
std::vector<std::string> report_paths(const std::string& prefix) {
  return {prefix + ".md", prefix + ".json", prefix + ".svg"};
}

void check_report_paths(const std::string& prefix, std::span<const std::string> inputs) {
  for (const std::string& path : report_paths(prefix)) check_output_path(path, inputs);
}

std::vector<std::string> write_report(const std::string& prefix, const Report& report) {
  const std::vector<std::string> paths = report_paths(prefix);
  // The Markdown links its chart by file name: both files sit in the same folder.
  std::string md = report.markdown;
  const std::string svg_name = std::filesystem::path(paths[2]).filename().string();
  for (size_t at = md.find(kChartLink); at != std::string::npos; at = md.find(kChartLink, at)) {
    md.replace(at, kChartLink.size(), svg_name);
  }
  const std::string json = json_text(report.json) + "\n";
  const std::string svg = render_svg(report.chart);
  const OutputFile files[] = {{paths[0], md}, {paths[1], json}, {paths[2], svg}};
  write_output_files(files);
  return paths;
}

std::string format_small(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 0.01 && std::fabs(v) < 1000) return fmt::format("{:.4f}", v);
  return fmt::format("{:.3e}", v);
}

std::string format_percent(double fraction, int decimals) {
  return fmt::format("{:.{}f}%", 100 * fraction, decimals);
}

}  // namespace kvpack::eval
