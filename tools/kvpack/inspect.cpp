// `kvpack inspect model.gguf`: header, metadata (arrays abbreviated) and tensor infos of a GGUF.
// Reads metadata and tensor infos only; tensor data stays unread.
#include <cstdio>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "base/table.h"
#include "base/terminal.h"
#include "base/units.h"
#include "commands.h"
#include "model/gguf.h"

namespace kvpack::cli {
namespace {

constexpr size_t kMaxStringChars = 80;

// Printable, one-line, bounded: control bytes escaped, long strings cut with their length.
std::string show_string(const std::string& s) {
  std::string out = "\"";
  size_t shown = 0;
  for (char ch : s) {
    if (shown == kMaxStringChars) break;
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
    ++shown;
  }
  out += "\"";
  if (s.size() > shown) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

std::string show_value(const model::GgufValue& v, size_t max_items) {
  if (v.type != model::GgufType::array) {
    if (const auto* s = std::get_if<std::string>(&v.scalar)) return show_string(*s);
    return v.to_string();
  }
  std::string out = "[";
  const size_t n = v.array_size();
  for (size_t i = 0; i < n && i < max_items; ++i) {
    if (i > 0) out += ", ";
    if (!v.strings.empty()) {
      out += show_string(v.strings[i]);
    } else if (!v.floats.empty()) {
      out += fmt::format("{}", v.floats[i]);
    } else if (!v.ints.empty()) {
      out += v.elem_type == model::GgufType::boolean ? (v.ints[i] ? "true" : "false")
                                                     : std::to_string(v.ints[i]);
    } else {
      out += show_value(v.arrays[i], max_items);
    }
  }
  if (n > max_items) out += fmt::format(", ... {} more", n - max_items);
  return out + "]";
}

std::string show_type(const model::GgufValue& v) {
  if (v.type != model::GgufType::array) return std::string(model::gguf_type_name(v.type));
  return fmt::format("{}[{}]", model::gguf_type_name(v.elem_type), v.array_size());
}

std::string show_shape(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return s;
}

void print_tensors(const model::GgufFile& f) {
  Table t({"tensor", "type", "shape", "elements", "bytes", "offset"});
  t.align_left(0).align_left(1).align_left(2);
  std::map<std::string, std::pair<size_t, uint64_t>> by_type;  // name -> (count, bytes)
  for (const auto& x : f.tensors()) {
    const std::string type = model::ggml_type_name(x.type);
    t.add_row({x.name, type, show_shape(x.shape), std::to_string(x.n_elements()),
               format_bytes(static_cast<double>(x.bytes)), std::to_string(x.offset)});
    auto& [count, bytes] = by_type[type];
    ++count;
    bytes += x.bytes;
  }
  std::printf("\n%s", t.to_text().c_str());
  std::string summary;
  for (const auto& [type, cb] : by_type) {
    summary += fmt::format("{}{}: {} ({})", summary.empty() ? "" : ", ", type, cb.first,
                           format_bytes(static_cast<double>(cb.second)));
  }
  std::printf("\n%zu tensors, %s: %s\n", f.tensors().size(),
              format_bytes(static_cast<double>(f.tensor_bytes())).c_str(), summary.c_str());
}

void run_inspect(const std::string& path, size_t max_items, bool no_tensors) {
  const model::GgufFile f = model::GgufFile::open(path);
  std::printf("%s: GGUF v%u, %s, %zu metadata keys, %zu tensors, alignment %llu, data at %llu\n\n",
              terminal_safe(path).c_str(), f.version(),
              format_bytes(static_cast<double>(f.file_size())).c_str(), f.metadata().size(),
              f.tensors().size(), static_cast<unsigned long long>(f.alignment()),
              static_cast<unsigned long long>(f.data_offset()));
  Table t({"key", "type", "value"});
  t.align_left(0).align_left(1).align_left(2);
  for (const auto& [key, value] : f.metadata()) {
    t.add_row({key, show_type(value), show_value(value, max_items)});
  }
  std::printf("%s", t.to_text().c_str());
  if (!no_tensors && !f.tensors().empty()) print_tensors(f);
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  struct Options {
    std::string path;
    size_t max_items = 8;
    bool no_tensors = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "inspect",
      "Print a GGUF file's metadata (arrays abbreviated) and its tensors' names, "
      "types, shapes and sizes");
  cmd->add_option("file", opt->path, "GGUF file")->required()->type_name("FILE");
  cmd->add_option("--max-items", opt->max_items, "Array items shown before '... N more'")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("--no-tensors", opt->no_tensors, "Metadata only");
  cmd->callback([opt] { run_inspect(opt->path, opt->max_items, opt->no_tensors); });
}

}  // namespace kvpack::cli
