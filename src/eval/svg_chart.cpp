#include "eval/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/terminal.h"

namespace kvpack::eval {
namespace {

// Canvas and plot area, in SVG user units.
constexpr double kWidth = 760, kHeight = 460;
constexpr double kLeft = 80, kRight = 200, kTop = 40, kBottom = 70;  // margins (labels at right)

// Text for SVG (XML 1.0): markup characters as entities; control characters, which XML does
// not allow even as references, and bytes that are not UTF-8 (a model's name comes from its
// file) as U+FFFD, so the chart stays a well-formed document for any input.
std::string escape(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    uint32_t cp = 0;
    const size_t n = utf8_sequence(std::string_view(s).substr(i), &cp);
    if (n == 0 || (cp < 0x20 && c != '\t' && c != '\n' && c != '\r') || cp == 0x7f ||
        (cp >= 0x80 && cp < 0xa0) || cp == 0xfffe || cp == 0xffff) {
      out += "\xef\xbf\xbd";  // U+FFFD
      i += n == 0 ? 1 : n;
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.append(s, i, n);
    }
    i += n;
  }
  return out;
}

// Short tick text: 3 significant digits, exponent form for very small or large values.
std::string tick_text(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a < 1e-3 || a >= 1e6) return fmt::format("{:.0e}", v);
  if (v == std::round(v)) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

// "Nice" linear ticks covering [lo, hi]: steps of 1, 2 or 5 x 10^k, about five of them.
std::vector<double> linear_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

// An axis mapping data values to pixels; log axes work in log10.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  double px0 = 0, px1 = 1;
  double floor_value = 0;  // log axes: where values <= 0 are drawn

  double value(double v) const { return log ? std::log10(std::max(v, floor_value)) : v; }
  double map(double v) const { return px0 + (value(v) - lo) / (hi - lo) * (px1 - px0); }
};

Axis fit_axis(const std::vector<double>& values, bool log, double px0, double px1) {
  Axis a;
  a.log = log;
  a.px0 = px0;
  a.px1 = px1;
  double lo = INFINITY, hi = -INFINITY;
  if (log) {
    double min_pos = INFINITY;
    for (double v : values) {
      if (v > 0) min_pos = std::min(min_pos, v);
    }
    if (!std::isfinite(min_pos)) min_pos = 1e-6;
    a.floor_value = min_pos / 10;
  }
  for (double v : values) {
    lo = std::min(lo, a.value(v));
    hi = std::max(hi, a.value(v));
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (log) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
    if (hi <= lo) hi = lo + 1;
  } else {
    const double pad = hi > lo ? (hi - lo) * 0.08 : std::max(std::fabs(hi) * 0.1, 1.0);
    lo -= pad;
    hi += pad;
    if (lo < 0 && std::all_of(values.begin(), values.end(), [](double v) { return v >= 0; })) {
      lo = 0;
    }
  }
  a.lo = lo;
  a.hi = hi;
  return a;
}

std::vector<double> ticks(const Axis& a) {
  if (!a.log) return linear_ticks(a.lo, a.hi);
  std::vector<double> t;
  const int step = std::max(1, static_cast<int>(std::ceil((a.hi - a.lo) / 8)));
  for (double e = a.lo; e <= a.hi + 1e-9; e += step) t.push_back(std::pow(10.0, e));
  return t;
}

// Greedy label placement: each label goes to the first of a few offsets around its point where it
// overlaps no label placed before it (or the last offset tried).
struct LabelBox {
  double x0, y0, x1, y1;
  bool overlaps(const LabelBox& o) const {
    return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1;
  }
};

LabelBox place_label(double px, double py, size_t chars, std::vector<LabelBox>& placed) {
  constexpr double kCharWidth = 5.6, kLine = 11;
  const double w = kCharWidth * static_cast<double>(chars);
  LabelBox box{};
  for (double dy : {-5.0, 9.0, -16.0, 20.0, -27.0, 31.0, -38.0, 42.0}) {
    box = {px + 7, py + dy - kLine + 2, px + 7 + w, py + dy + 2};
    if (std::none_of(placed.begin(), placed.end(),
                     [&](const LabelBox& b) { return b.overlaps(box); })) {
      break;
    }
  }
  placed.push_back(box);
  return box;
}

// Splits text into lines of at most `width` characters at spaces.
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(' ', at);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(at, end - at);
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    at = end + 1;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace

std::vector<size_t> pareto_front(const std::vector<ChartPoint>& points, bool lower_is_better) {
  std::vector<size_t> idx(points.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  const auto better = [&](double a, double b) { return lower_is_better ? a < b : a > b; };
  // By cost, then best quality first; a point joins when it beats everything cheaper.
  std::sort(idx.begin(), idx.end(), [&](size_t i, size_t j) {
    if (points[i].x != points[j].x) return points[i].x < points[j].x;
    return better(points[i].y, points[j].y);
  });
  std::vector<size_t> front;
  for (size_t i : idx) {
    if (front.empty() || better(points[i].y, points[front.back()].y)) front.push_back(i);
  }
  return front;
}

std::string render_svg(const Chart& c) {
  const std::vector<std::string> note = wrap(c.note, 110);
  const double height = kHeight + 14.0 * static_cast<double>(note.size() > 1 ? note.size() - 1 : 0);
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;
  std::vector<double> xs, ys;
  for (const auto& p : c.points) {
    xs.push_back(p.x);
    ys.push_back(p.y);
  }
  const Axis ax = fit_axis(xs, false, x0, x1);
  const Axis ay = fit_axis(ys, c.log_y, y0, y1);

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      kWidth, height, kLeft, escape(c.title));
  // Grid, ticks and axis labels.
  for (double t : ticks(ax)) {
    const double px = ax.map(t);
    s += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e4e4e4\"/>\n"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px, y0, y1, y0 + 16, tick_text(t));
  }
  for (double t : ticks(ay)) {
    const double py = ay.map(t);
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e4e4e4\"/>\n"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        x0, py, x1, x0 - 6, py + 4, tick_text(t));
  }
  s += fmt::format(
      "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" fill=\"none\" stroke=\"#444\"/>\n"
      "<text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">{6}</text>\n"
      "<text transform=\"translate(18 {7}) rotate(-90)\" text-anchor=\"middle\">{8}</text>\n",
      x0, y1, x1 - x0, y0 - y1, (x0 + x1) / 2, y0 + 38, escape(c.x_label), (y0 + y1) / 2,
      escape(c.y_label + (c.log_y ? " (log scale)" : "")));
  // The Pareto front, then every point with its label.
  const std::vector<size_t> front = pareto_front(c.points, c.lower_is_better);
  if (front.size() > 1) {
    std::string pts;
    for (size_t i : front) {
      pts += fmt::format("{:.1f},{:.1f} ", ax.map(c.points[i].x), ay.map(c.points[i].y));
    }
    s += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#2a7ab9\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"5 3\"/>\n",
        pts);
  }
  std::vector<LabelBox> placed;
  for (size_t i = 0; i < c.points.size(); ++i) {
    const ChartPoint& p = c.points[i];
    const bool on_front = std::find(front.begin(), front.end(), i) != front.end();
    const double px = ax.map(p.x), py = ay.map(p.y);
    const char* fill = p.highlight ? "#d62728" : on_front ? "#2a7ab9" : "#999";
    std::string label = p.label;
    if (c.log_y && p.y <= 0) label += " (0)";
    const LabelBox box = place_label(px, py, label.size(), placed);
    s += fmt::format(
        "<circle cx=\"{0:.1f}\" cy=\"{1:.1f}\" r=\"{2}\" fill=\"{3}\"><title>{4}: x={5:.4g}, "
        "y={6:.4g}</title></circle>\n"
        "<text x=\"{7:.1f}\" y=\"{8:.1f}\" font-size=\"10\" fill=\"#333\">{4}</text>\n",
        px, py, p.highlight ? 6 : 4, fill, escape(label), p.x, p.y, box.x0, box.y1 - 2);
  }
  for (size_t i = 0; i < note.size(); ++i) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text>\n",
                     kLeft - 60, kHeight - 14 + 14.0 * static_cast<double>(i), escape(note[i]));
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#2a7ab9\">dashed: Pareto front</text>\n"
      "</svg>\n",
      x1 + 10, y1 + 12);
  return s;
}

}  // namespace kvpack::eval
