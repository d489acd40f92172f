// Plain-text and Markdown tables for CLI reports (plan, formats, bench, eval).
#pragma once

#include <string>
#include <vector>

namespace kvpack {

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // Columns are right-aligned unless marked left (names, descriptions).
  Table& align_left(size_t column);
  Table& add_row(std::vector<std::string> cells);
  // A horizontal rule before the next row (text output only).
  Table& add_separator();
  size_t rows() const { return rows_.size(); }

  std::string to_text() const;
  std::string to_markdown() const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> left_;
  std::vector<std::vector<std::string>> rows_;  // an empty row is a separator
};

}  // namespace kvpack
