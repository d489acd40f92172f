// The SVG chart writer and the report files.
#include "eval/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli_run.h"
#include "eval/svg_chart.h"

namespace kvpack::eval {
namespace {

TEST(SvgChart, ParetoFront) {
  // Lower y is better: (1, 5) (2, 3) (3, 4) (4, 1) -> (3, 4) is dominated by (2, 3).
  const std::vector<ChartPoint> p = {{2, 3, "b"}, {1, 5, "a"}, {4, 1, "d"}, {3, 4, "c"}};
  EXPECT_EQ(pareto_front(p, true), (std::vector<size_t>{1, 0, 2}));
  // Higher is better: (1, 5) dominates everything costlier but lower.
  EXPECT_EQ(pareto_front(p, false), (std::vector<size_t>{1}));
  EXPECT_TRUE(pareto_front({}, true).empty());
}

TEST(SvgChart, RendersEveryPointEscaped) {
  Chart c;
  c.title = "KLD <vs> bytes & more";
  c.x_label = "bytes";
  c.y_label = "KLD";
  c.log_y = true;
  c.points = {{640, 0, "f16/f16"}, {400, 1e-3, "q8/q8"}, {240, 0.8, "k=q4;0:k=q8", true}};
  const std::string svg = render_svg(c);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("KLD &lt;vs&gt; bytes &amp; more"), std::string::npos);
  EXPECT_NE(svg.find("f16/f16 (0)"), std::string::npos);  // zero on a log axis is labelled
  EXPECT_NE(svg.find("#d62728"), std::string::npos);      // the highlighted point
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) {
    ++circles;
  }
  EXPECT_EQ(circles, 3u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(Report, WritesThreeFilesAndLinksTheChart) {
  Report r;
  r.markdown = std::string("# t\n\n![chart](") + std::string(kChartLink) + ")\n";
  r.json = {{"eval", "test"}};
  r.chart.points = {{1, 1, "a"}};
  const auto dir = std::filesystem::path(kvpack::testing::temp_path("report-test"));
  std::filesystem::create_directories(dir);
  const auto paths = write_report((dir / "out").string(), r);
  ASSERT_EQ(paths.size(), 3u);
  std::ifstream md(paths[0]);
  const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "# t\n\n![chart](out.svg)\n");
  EXPECT_TRUE(std::filesystem::exists(paths[1]));
  EXPECT_TRUE(std::filesystem::exists(paths[2]));
  std::filesystem::remove_all(dir);
  EXPECT_THROW(write_report("/nonexistent-dir/x", r), std::exception);
}

TEST(Report, NumberFormats) {
  EXPECT_EQ(format_small(0), "0");
  EXPECT_EQ(format_small(0.1234567), "0.1235");
  EXPECT_EQ(format_small(3.2e-5), "3.200e-05");
  EXPECT_EQ(format_percent(0.99614), "99.61%");
}

}  // namespace
}  // namespace kvpack::eval
