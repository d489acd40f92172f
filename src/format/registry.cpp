// The format registry: one row per format, gathered from the family files, plus name lookup.
#include <algorithm>
#include <cctype>

#include "base/error.h"
#include "base/rng.h"
#include "format/families.h"

namespace kvpack::format {
namespace {

std::vector<FormatInfo> build_rows() {
  std::vector<FormatInfo> rows;
  add_float_formats(rows);
  add_fp8_format(rows);
  add_int_formats(rows);
  add_kivi_formats(rows);
  add_turbo_formats(rows);
  add_turbo_qjl_formats(rows);
  std::sort(rows.begin(), rows.end(),
            [](const FormatInfo& a, const FormatInfo& b) { return a.id < b.id; });
  return rows;
}

const std::vector<FormatInfo>& rows() {
  static const std::vector<FormatInfo> r = build_rows();
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string known_names() {
  std::string s;
  for (const auto& r : rows()) {
    if (!s.empty()) s += ", ";
    s += r.name;
  }
  return s;
}

const char* role_name(Role role) {
  return role == Role::K ? "K" : "V";
}

}  // namespace

std::span<const FormatInfo> all_formats() {
  return rows();
}

const FormatInfo& info(FormatId id) {
  for (const auto& r : rows()) {
    if (r.id == id) return r;
  }
  fail("KV format id {} is not registered", static_cast<int>(id));
}

const FormatInfo* find_format(std::string_view name) {
  for (const auto& r : rows()) {
    if (iequals(r.name, name)) return &r;
    std::string_view rest = r.aliases;
    while (!rest.empty()) {
      const size_t sp = rest.find(' ');
      if (iequals(rest.substr(0, sp), name)) return &r;
      rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    }
  }
  return nullptr;
}

FormatId parse_format(std::string_view name) {
  if (const FormatInfo* f = find_format(name)) return f->id;
  fail("unknown KV format '{}' (known: {})", name, known_names());
}

std::unique_ptr<Codec> make_codec(FormatId id, const CodecConfig& config) {
  const FormatInfo& f = info(id);
  if (config.head_dim <= 0 || config.page_tokens <= 0 || config.n_heads <= 0) {
    fail("KV format {}: invalid geometry (head dim {}, page tokens {}, heads {})", f.name,
         config.head_dim, config.page_tokens, config.n_heads);
  }
  if (const std::string why = why_unsupported(id, config); !why.empty()) {
    fail("KV format {} cannot store {} at head dim {}, page size {}: {}", f.name,
         role_name(config.role), config.head_dim, config.page_tokens, why);
  }
  return f.make(config);
}

std::string why_unsupported(FormatId id, const CodecConfig& config) {
  const FormatInfo& f = info(id);
  std::string why = require_role(f, config);
  if (why.empty()) why = f.unsupported(config);
  return why;
}

uint64_t layer_seed(int layer, Role role, uint64_t model_seed) {
  return mix_seed(model_seed ^ 0x6b767061636bull, static_cast<uint64_t>(layer),
                  static_cast<uint64_t>(role));
}

int group_size(int head_dim) {
  if (head_dim % 32 == 0) return 32;
  if (head_dim % 16 == 0) return 16;
  if (head_dim % 8 == 0) return 8;
  return 0;
}

std::string require_role(const FormatInfo& info, const CodecConfig& config) {
  if (info.supports(config.role)) return {};
  return config.role == Role::K ? "it is a value-only format" : "it is a key-only format";
}

std::string require_dim_multiple(const CodecConfig& config, int multiple) {
  if (config.head_dim % multiple == 0) return {};
  return "head dim must be a multiple of " + std::to_string(multiple);
}

}  // namespace kvpack::format
