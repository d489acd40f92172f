#include "base/table.h"

#include <algorithm>

#include "base/error.h"
#include "base/terminal.h"

namespace kvpack {
namespace {

// Display width of UTF-8 text: counts code points, not bytes.
size_t width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xc0) != 0x80;
  return w;
}

std::string pad(const std::string& s, size_t w, bool left) {
  const size_t n = w > width(s) ? w - width(s) : 0;
  return left ? s + std::string(n, ' ') : std::string(n, ' ') + s;
}

}  // namespace

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), left_(headers_.size(), false) {
  for (std::string& h : headers_) h = terminal_safe(h);
}

Table& Table::align_left(size_t column) {
  KVPACK_ASSERT(column < left_.size());
  left_[column] = true;
  return *this;
}

Table& Table::add_row(std::vector<std::string> cells) {
  KVPACK_ASSERT(cells.size() == headers_.size(), "row has {} cells, table has {} columns",
                cells.size(), headers_.size());
  // Cells hold names from files and arguments (GGUF keys, tensor and model names, paths).
  for (std::string& c : cells) c = terminal_safe(c);
  rows_.push_back(std::move(cells));
  return *this;
}

Table& Table::add_separator() {
  rows_.emplace_back();
  return *this;
}

std::string Table::to_text() const {
  std::vector<size_t> w(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) w[c] = width(headers_[c]);
  for (const auto& r : rows_) {
    for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], width(r[c]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c) s += "  ";
      s += pad(cells[c], w[c], left_[c]);
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  std::string rule;
  for (size_t c = 0; c < w.size(); ++c)
    rule += std::string(w[c], '-') + (c + 1 < w.size() ? "  " : "");
  std::string out = line(headers_) + rule + "\n";
  for (const auto& r : rows_) out += r.empty() ? rule + "\n" : line(r);
  return out;
}

std::string Table::to_markdown() const {
  auto line = [](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (const auto& c : cells) {
      s += ' ';
      for (char ch : c) s += ch == '|' ? std::string("\\|") : std::string(1, ch);  // not a column
      s += " |";
    }
    return s + "\n";
  };
  std::string out = line(headers_) + "|";
  for (size_t c = 0; c < headers_.size(); ++c) out += left_[c] ? "---|" : "---:|";
  out += "\n";
  for (const auto& r : rows_) {
    if (!r.empty()) out += line(r);
  }
  return out;
}

}  // namespace kvpack
