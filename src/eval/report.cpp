#include "eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "base/error.h"

namespace kvpack::eval {
namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail("cannot write the report file '{}'", path);
  f << text;
  if (!f) fail("cannot write the report file '{}'", path);
}

}  // namespace

std::vector<std::string> write_report(const std::string& prefix, const Report& report) {
  const std::vector<std::string> paths = {prefix + ".md", prefix + ".json", prefix + ".svg"};
  // The Markdown links its chart by file name: both files sit in the same folder.
  std::string md = report.markdown;
  const std::string svg_name = std::filesystem::path(paths[2]).filename().string();
  for (size_t at = md.find(kChartLink); at != std::string::npos; at = md.find(kChartLink, at)) {
    md.replace(at, kChartLink.size(), svg_name);
  }
  write_file(paths[0], md);
  // Generated text (passkey answers) may be invalid UTF-8: written as U+FFFD, not an exception.
  write_file(paths[1],
             report.json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  write_file(paths[2], render_svg(report.chart));
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
