// A small hand-made SVG writer for the eval reports: one scatter chart of quality against cost
// (bytes per token), the policies on the Pareto front joined by a line. No dependencies; the
// output is a standalone .svg file any browser or Markdown viewer shows.
#pragma once

#include <string>
#include <vector>

namespace kvpack::eval {

struct ChartPoint {
  double x = 0;  // cost, e.g. bytes per token (lower is better)
  double y = 0;  // quality measure
  std::string label;
  bool highlight = false;  // drawn larger and in another colour (e.g. a searched policy)
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;           // values <= 0 are drawn on the axis floor and labelled "(0)"
  bool lower_is_better = true;  // for y: KLD and errors are, accuracy is not
  std::vector<ChartPoint> points;
  std::string note;  // one line under the plot
};

// Indices of the points no other point beats in both cost and quality, by increasing x.
std::vector<size_t> pareto_front(const std::vector<ChartPoint>& points, bool lower_is_better);

// The chart as an SVG document.
std::string render_svg(const Chart& chart);

}  // namespace kvpack::eval
