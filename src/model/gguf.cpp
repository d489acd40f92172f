#include "model/gguf.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "base/error.h"
#include "base/input_file.h"

namespace kvpack::model {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 4;

// Bounds-checked little-endian reader over the file bytes. Every read names the field it reads
// so a malformed file produces "file: <field>: needs N bytes at offset X, file has Y".
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : b_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }

  void need(uint64_t n, std::string_view field) const {
    if (n > remaining()) {
      fail("{}: {}: needs {} bytes at offset {}, but the file ends at {} (truncated?)", name_,
           field, n, pos_, b_.size());
    }
  }

  template <typename T>
  T read(std::string_view field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view field) {
    const uint64_t len = read<uint64_t>(field);
    need(len, field);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one element of type t (used to bound array counts before allocating).
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      return 1;
    case GgufType::u16:
    case GgufType::i16:
      return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32:
      return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64:
    case GgufType::string:
      return 8;
    case GgufType::array:
      return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::f64);
}

struct Reader {
  Cursor& c;
  const std::string& name;

  // Reads a scalar of type t (not array) into an int64/uint64/double/bool/string. `field` names
  // it in errors; callers build it once per key, not per array element (a long key times a long
  // array would otherwise cost their product in string copies).
  void read_scalar(GgufType t, GgufValue& out, const std::string& field) {
    switch (t) {
      case GgufType::u8:
        out.scalar = static_cast<uint64_t>(c.read<uint8_t>(field));
        break;
      case GgufType::i8:
        out.scalar = static_cast<int64_t>(c.read<int8_t>(field));
        break;
      case GgufType::u16:
        out.scalar = static_cast<uint64_t>(c.read<uint16_t>(field));
        break;
      case GgufType::i16:
        out.scalar = static_cast<int64_t>(c.read<int16_t>(field));
        break;
      case GgufType::u32:
        out.scalar = static_cast<uint64_t>(c.read<uint32_t>(field));
        break;
      case GgufType::i32:
        out.scalar = static_cast<int64_t>(c.read<int32_t>(field));
        break;
      case GgufType::u64:
        out.scalar = c.read<uint64_t>(field);
        break;
      case GgufType::i64:
        out.scalar = c.read<int64_t>(field);
        break;
      case GgufType::f32:
        out.scalar = static_cast<double>(c.read<float>(field));
        break;
      case GgufType::f64:
        out.scalar = c.read<double>(field);
        break;
      case GgufType::boolean: {
        const uint8_t b = c.read<uint8_t>(field);
        if (b > 1) fail("{}: {}: bool must be 0 or 1, got {}", name, field, b);
        out.scalar = b != 0;
        break;
      }
      case GgufType::string:
        out.scalar = c.read_string(field);
        break;
      case GgufType::array:
        break;  // handled by read_value
    }
  }

  void read_value(GgufType t, GgufValue& out, const std::string& key, int depth) {
    out.type = t;
    if (t != GgufType::array) {
      read_scalar(t, out, "value of '" + key + "'");
      return;
    }
    if (depth >= kMaxArrayNesting) fail("{}: '{}': arrays nested too deeply", name, key);
    const uint32_t et = c.read<uint32_t>("array type of '" + key + "'");
    if (!valid_type(et)) fail("{}: '{}': unknown array element type {}", name, key, et);
    out.elem_type = static_cast<GgufType>(et);
    const uint64_t n = c.read<uint64_t>("array length of '" + key + "'");
    if (n > c.remaining() / min_encoded_size(out.elem_type)) {
      fail("{}: '{}': array of {} elements cannot fit in the {} bytes left (truncated or corrupt)",
           name, key, n, c.remaining());
    }
    GgufValue elem;
    const std::string field = "value of '" + key + "'";
    for (uint64_t i = 0; i < n; ++i) {
      if (out.elem_type == GgufType::array) {
        out.arrays.emplace_back();
        read_value(GgufType::array, out.arrays.back(), key, depth + 1);
        continue;
      }
      read_scalar(out.elem_type, elem, field);
      if (auto* s = std::get_if<std::string>(&elem.scalar)) {
        out.strings.push_back(std::move(*s));
      } else if (auto* d = std::get_if<double>(&elem.scalar)) {
        out.floats.push_back(*d);
      } else if (auto* u = std::get_if<uint64_t>(&elem.scalar)) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail("{}: '{}': array element {} is too large", name, key, *u);
        }
        out.ints.push_back(static_cast<int64_t>(*u));
      } else if (auto* b = std::get_if<bool>(&elem.scalar)) {
        out.ints.push_back(*b ? 1 : 0);
      } else {
        out.ints.push_back(std::get<int64_t>(elem.scalar));
      }
    }
  }
};

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                "i32", "f32", "bool", "string", "array",
                                                "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

size_t GgufValue::array_size() const {
  return ints.size() + floats.size() + strings.size() + arrays.size();
}

bool GgufValue::is_integer() const {
  return std::holds_alternative<int64_t>(scalar) || std::holds_alternative<uint64_t>(scalar);
}

std::string GgufValue::to_string(size_t max_items) const {
  if (type != GgufType::array) {
    return std::visit(
        [](const auto& v) -> std::string {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::monostate>) {
            return "";
          } else if constexpr (std::is_same_v<V, std::string>) {
            return "\"" + v + "\"";
          } else if constexpr (std::is_same_v<V, bool>) {
            return v ? "true" : "false";
          } else {
            return fmt::format("{}", v);
          }
        },
        scalar);
  }
  std::string s = "[";
  const size_t n = array_size();
  for (size_t i = 0; i < n && i < max_items; ++i) {
    if (i) s += ", ";
    if (!strings.empty()) {
      s += "\"" + strings[i] + "\"";
    } else if (!floats.empty()) {
      s += fmt::format("{}", floats[i]);
    } else if (!ints.empty()) {
      s += fmt::format("{}", ints[i]);
    } else {
      s += arrays[i].to_string(max_items);
    }
  }
  if (n > max_items) s += fmt::format(", ... ({} {} items)", n, gguf_type_name(elem_type));
  return s + "]";
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

GgufFile::GgufFile(GgufFile&& o) noexcept {
  *this = std::move(o);
}

GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) munmap(map_, size_);
    path_ = std::move(o.path_);
    version_ = o.version_;
    alignment_ = o.alignment_;
    data_offset_ = o.data_offset_;
    size_ = o.size_;
    map_ = std::exchange(o.map_, nullptr);
    kv_ = std::move(o.kv_);
    tensors_ = std::move(o.tensors_);
  }
  return *this;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

GgufFile GgufFile::open(const std::string& path) {
  // Never blocks: a named pipe, a device (/dev/zero, /dev/stdin) or a directory is refused with
  // what it is, before any read.
  uint64_t size = 0;
  const int fd = open_regular_file(path, "GGUF model", &size);
  GgufFile f;
  f.path_ = path;
  f.size_ = size;
  if (f.size_ == 0) {
    ::close(fd);
    fail("{}: file is empty, expected a GGUF header", path);
  }
  void* m = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail("{}: cannot map the file: {}", path, std::strerror(errno));
  f.map_ = m;
  f.parse_all({static_cast<const uint8_t*>(m), f.size_});
  return f;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  GgufFile f;
  f.path_ = std::move(name);
  f.size_ = bytes.size();
  f.parse_all(bytes);
  return f;
}

void GgufFile::parse_all(std::span<const uint8_t> bytes) {
  Cursor c(bytes, path_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) fail("{}: not a GGUF file (magic bytes are not 'GGUF')", path_);
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    fail("{}: GGUF version {} is not supported (expected 2 or 3)", path_, version_);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each key-value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 8+4+8+4+8.
  if (n_kv > c.remaining() / 13)
    fail("{}: metadata count {} is impossible for the file size", path_, n_kv);
  if (n_tensors > c.remaining() / 32) {
    fail("{}: tensor count {} is impossible for the file size", path_, n_tensors);
  }

  Reader r{c, path_};
  std::unordered_set<std::string> seen;
  kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(fmt::format("key of metadata entry {}", i));
    if (!seen.insert(key).second) fail("{}: duplicate metadata key '{}'", path_, key);
    const uint32_t t = c.read<uint32_t>("type of '" + key + "'");
    if (!valid_type(t)) fail("{}: '{}': unknown value type {}", path_, key, t);
    GgufValue v;
    r.read_value(static_cast<GgufType>(t), v, key, 0);
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer()) type_error("general.alignment", *a, "an integer");
    const int64_t al = get_int("general.alignment").value();
    if (al <= 0 || al > 65536 || (al & (al - 1)) != 0) {
      fail("{}: general.alignment is {}, expected a power of two up to 65536", path_, al);
    }
    alignment_ = static_cast<uint64_t>(al);
  }

  seen.clear();
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string(fmt::format("name of tensor {}", i));
    if (!seen.insert(t.name).second) fail("{}: duplicate tensor name '{}'", path_, t.name);
    const uint32_t n_dims = c.read<uint32_t>("dimension count of '" + t.name + "'");
    if (n_dims == 0 || n_dims > kMaxDims) {
      fail("{}: tensor '{}' has {} dimensions, expected 1 to {}", path_, t.name, n_dims, kMaxDims);
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("shape of '" + t.name + "'");
      if (ne == 0 || ne > (uint64_t{1} << 48) || n_elements > (uint64_t{1} << 62) / ne) {
        fail("{}: tensor '{}' has an invalid dimension {}", path_, t.name, ne);
      }
      n_elements *= ne;
      t.shape.push_back(static_cast<int64_t>(ne));
    }
    t.type = c.read<uint32_t>("type of '" + t.name + "'");
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (ti == nullptr) fail("{}: tensor '{}' has unknown ggml type {}", path_, t.name, t.type);
    if (t.shape[0] % ti->block_size != 0) {
      fail("{}: tensor '{}' row of {} values is not a whole number of {} blocks ({} values)", path_,
           t.name, t.shape[0], ti->name, ti->block_size);
    }
    // Bounded by the file size before multiplying: 2^62 F32 values would wrap to 0 bytes.
    const uint64_t blocks = n_elements / static_cast<uint64_t>(ti->block_size);
    if (blocks > size_ / static_cast<uint64_t>(ti->type_size)) {
      fail("{}: tensor '{}' ({} {} values) is larger than the whole file ({} bytes)", path_, t.name,
           n_elements, ti->name, size_);
    }
    t.bytes = blocks * static_cast<uint64_t>(ti->type_size);
    t.offset = c.read<uint64_t>("offset of '" + t.name + "'");
    if (t.offset % alignment_ != 0) {
      fail("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path_, t.name,
           t.offset, alignment_);
    }
    tensors_.push_back(std::move(t));
  }

  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (auto& t : tensors_) {
    if (t.offset > size_ || t.bytes > size_ - t.offset ||
        data_offset_ > size_ - t.offset - t.bytes) {
      fail(
          "{}: tensor '{}' data ({} bytes at offset {}) runs past the end of the file ({} bytes; "
          "truncated?)",
          path_, t.name, t.bytes, data_offset_ + t.offset, size_);
    }
    t.data = bytes.data() + data_offset_ + t.offset;
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void GgufFile::type_error(std::string_view key, const GgufValue& v,
                          std::string_view expected) const {
  fail("{}: metadata '{}' has type {}, expected {}", path_, key, gguf_type_name(v.type), expected);
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(&v->scalar)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v->scalar)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail("{}: metadata '{}' value {} is too large", path_, key, *u);
    }
    return static_cast<int64_t>(*u);
  }
  type_error(key, *v, "an integer");
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v->scalar)) return *d;
  if (v->is_integer()) return static_cast<double>(*get_int(key));
  type_error(key, *v, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->scalar)) return *b;
  type_error(key, *v, "a bool");
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->scalar)) return *s;
  type_error(key, *v, "a string");
}

const std::vector<std::string>* GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return nullptr;
  if (v->type != GgufType::array || v->elem_type != GgufType::string) {
    type_error(key, *v, "an array of strings");
  }
  return &v->strings;
}

const std::vector<int64_t>* GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return nullptr;
  if (v->type != GgufType::array || !v->floats.empty() || !v->strings.empty() ||
      !v->arrays.empty() || v->elem_type == GgufType::f32 || v->elem_type == GgufType::f64 ||
      v->elem_type == GgufType::string || v->elem_type == GgufType::array) {
    type_error(key, *v, "an array of integers");
  }
  return &v->ints;
}

const std::vector<double>* GgufFile::get_floats(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return nullptr;
  if (v->type != GgufType::array ||
      (v->elem_type != GgufType::f32 && v->elem_type != GgufType::f64)) {
    type_error(key, *v, "an array of floats");
  }
  return &v->floats;
}

int64_t GgufFile::require_int(std::string_view key) const {
  if (auto v = get_int(key)) return *v;
  fail("{}: missing metadata '{}'", path_, key);
}

std::string GgufFile::require_string(std::string_view key) const {
  if (auto v = get_string(key)) return *v;
  fail("{}: missing metadata '{}'", path_, key);
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

uint64_t GgufFile::tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& t : tensors_) total += t.bytes;
  return total;
}

}  // namespace kvpack::model
