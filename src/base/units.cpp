#include "base/units.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "base/error.h"

namespace kvpack {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// Splits "1.5GiB" into 1.5 and "gib"; throws when there is no leading number.
double leading_number(std::string_view text, std::string_view what, std::string* suffix) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  if (i == 0) fail("invalid {} '{}': expected a number", what, text);
  double value = 0;
  const std::string num(text.substr(0, i));
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
  if (ec != std::errc() || ptr != num.data() + num.size()) {
    fail("invalid {} '{}': expected a number", what, text);
  }
  *suffix = lower(text.substr(i));
  return value;
}

}  // namespace

uint64_t parse_bytes(std::string_view text) {
  std::string unit;
  const double value = leading_number(text, "size", &unit);
  struct Unit {
    const char* name;
    double scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},         {"b", 1},      {"k", 0x1p10},   {"kib", 0x1p10}, {"m", 0x1p20},
      {"mib", 0x1p20}, {"g", 0x1p30}, {"gib", 0x1p30}, {"t", 0x1p40},   {"tib", 0x1p40},
      {"kb", 1e3},     {"mb", 1e6},   {"gb", 1e9},     {"tb", 1e12},
  };
  for (const auto& u : kUnits) {
    if (unit == u.name) {
      const double bytes = value * u.scale;
      if (!(bytes < 0x1p63)) fail("invalid size '{}': too large", text);
      return static_cast<uint64_t>(std::llround(bytes));
    }
  }
  fail("invalid size '{}': unknown unit '{}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", text,
       unit);
}

int64_t parse_count(std::string_view text) {
  std::string unit;
  const double value = leading_number(text, "count", &unit);
  double scale = 1;
  if (unit == "k") {
    scale = 1024;
  } else if (unit == "m") {
    scale = 1024.0 * 1024.0;
  } else if (!unit.empty()) {
    fail("invalid count '{}': unknown suffix '{}' (use k or M)", text, unit);
  }
  const double n = value * scale;
  if (n != std::floor(n)) fail("invalid count '{}': not a whole number", text);
  if (!(n < 0x1p62)) fail("invalid count '{}': too large", text);
  return static_cast<int64_t>(n);
}

std::vector<int64_t> parse_counts(std::span<const std::string> texts) {
  std::vector<int64_t> out;
  for (const std::string& t : texts) {
    std::string_view rest = t;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      out.push_back(parse_count(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return out;
}

int64_t parse_context(std::string_view text, std::string_view flag, int64_t min) {
  const int64_t n = parse_count(text);
  if (n < min || n > kMaxContextTokens) {
    fail("{} {}: expected {} to {} tokens", flag, text, format_count(min),
         format_count(kMaxContextTokens));
  }
  return n;
}

std::vector<int64_t> parse_contexts(std::span<const std::string> texts, std::string_view flag,
                                    int64_t min) {
  std::vector<int64_t> out = parse_counts(texts);
  for (int64_t n : out) {
    if (n < min || n > kMaxContextTokens) {
      fail("{} {}: expected {} to {} tokens", flag, n, format_count(min),
           format_count(kMaxContextTokens));
    }
  }
  return out;
}

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

uint64_t parse_memory_bytes(std::string_view text, std::string_view flag) {
  const uint64_t bytes = parse_bytes(text);
  const uint64_t ram = physical_memory_bytes();
  if (ram != 0 && bytes > ram) {
    fail("{} {}: more than this machine's {} of memory", flag, text,
         format_bytes(static_cast<double>(ram)));
  }
  return bytes;
}

std::string format_bytes(double bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024.0 && i < 5) {
    v /= 1024.0;
    ++i;
  }
  if (i == 0) return fmt::format("{:.0f} B", v);
  return fmt::format("{:.2f} {}", v, kNames[i]);
}

std::string format_count(int64_t n) {
  if (n >= 1024 * 1024 && n % (1024 * 1024) == 0) return fmt::format("{}M", n / (1024 * 1024));
  if (n >= 1024 && n % 1024 == 0) return fmt::format("{}k", n / 1024);
  return fmt::format("{}", n);
}

}  // namespace kvpack
