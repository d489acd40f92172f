#include "model/gguf_writer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "base/error.h"

namespace kvpack::model {
namespace {

bool is_unsigned(GgufType t) {
  return t == GgufType::u8 || t == GgufType::u16 || t == GgufType::u32 || t == GgufType::u64;
}
bool is_signed(GgufType t) {
  return t == GgufType::i8 || t == GgufType::i16 || t == GgufType::i32 || t == GgufType::i64;
}
bool is_float(GgufType t) {
  return t == GgufType::f32 || t == GgufType::f64;
}

uint64_t unsigned_max(GgufType t) {
  switch (t) {
    case GgufType::u8:
      return 0xff;
    case GgufType::u16:
      return 0xffff;
    case GgufType::u32:
      return 0xffffffff;
    default:
      return std::numeric_limits<uint64_t>::max();
  }
}

// Whether v lies in t's range. Array elements are int64 (as the reader stores them), so u64
// elements above 2^63 cannot occur; scalars of u64 go through the uint64 path instead.
bool fits(GgufType t, int64_t v) {
  switch (t) {
    case GgufType::u8:
      return v >= 0 && v <= 0xff;
    case GgufType::u16:
      return v >= 0 && v <= 0xffff;
    case GgufType::u32:
      return v >= 0 && v <= 0xffffffffll;
    case GgufType::u64:
      return v >= 0;
    case GgufType::i8:
      return v >= -128 && v <= 127;
    case GgufType::i16:
      return v >= -32768 && v <= 32767;
    case GgufType::i32:
      return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    case GgufType::i64:
      return true;
    case GgufType::boolean:
      return v == 0 || v == 1;
    default:
      return false;
  }
}

// Appends little-endian bytes (kvpack targets little-endian hosts, as GGUF's byte order).
class Sink {
 public:
  explicit Sink(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    out_.resize((out_.size() + alignment - 1) / alignment * alignment, 0);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Writes one integer element of type t; v has been range-checked.
void put_int(Sink& s, GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      s.put(static_cast<uint8_t>(bits));
      break;
    case GgufType::u16:
    case GgufType::i16:
      s.put(static_cast<uint16_t>(bits));
      break;
    case GgufType::u32:
    case GgufType::i32:
      s.put(static_cast<uint32_t>(bits));
      break;
    default:
      s.put(bits);
      break;
  }
}

void put_float(Sink& s, GgufType t, double v) {
  if (t == GgufType::f32) {
    s.put(static_cast<float>(v));
  } else {
    s.put(v);
  }
}

void put_scalar(Sink& s, const std::string& key, const GgufValue& v) {
  const GgufType t = v.type;
  if (t == GgufType::string) {
    const auto* str = std::get_if<std::string>(&v.scalar);
    if (str == nullptr) fail("GGUF writer: metadata '{}': string value missing", key);
    s.put_string(*str);
  } else if (t == GgufType::boolean) {
    const auto* b = std::get_if<bool>(&v.scalar);
    if (b == nullptr) fail("GGUF writer: metadata '{}': bool value missing", key);
    s.put<uint8_t>(*b ? 1 : 0);
  } else if (is_float(t)) {
    const auto* d = std::get_if<double>(&v.scalar);
    if (d == nullptr) fail("GGUF writer: metadata '{}': float value missing", key);
    put_float(s, t, *d);
  } else if (const auto* u = std::get_if<uint64_t>(&v.scalar)) {
    if (!is_unsigned(t) || *u > unsigned_max(t)) {
      fail("GGUF writer: metadata '{}': value {} does not fit {}", key, *u, gguf_type_name(t));
    }
    put_int(s, t, *u);
  } else if (const auto* i = std::get_if<int64_t>(&v.scalar)) {
    if (!fits(t, *i)) {
      fail("GGUF writer: metadata '{}': value {} does not fit {}", key, *i, gguf_type_name(t));
    }
    put_int(s, t, static_cast<uint64_t>(*i));
  } else {
    fail("GGUF writer: metadata '{}': {} value missing", key, gguf_type_name(t));
  }
}

void put_value(Sink& s, const std::string& key, const GgufValue& v, int depth) {
  if (v.type != GgufType::array) {
    put_scalar(s, key, v);
    return;
  }
  if (depth >= 4) fail("GGUF writer: metadata '{}': arrays nested too deeply", key);
  const GgufType et = v.elem_type;
  s.put(static_cast<uint32_t>(et));
  s.put<uint64_t>(v.array_size());
  if (et == GgufType::string) {
    if (v.array_size() != v.strings.size()) fail("GGUF writer: '{}': mixed array", key);
    for (const auto& str : v.strings) s.put_string(str);
  } else if (is_float(et)) {
    if (v.array_size() != v.floats.size()) fail("GGUF writer: '{}': mixed array", key);
    for (double d : v.floats) put_float(s, et, d);
  } else if (et == GgufType::array) {
    if (v.array_size() != v.arrays.size()) fail("GGUF writer: '{}': mixed array", key);
    for (const auto& a : v.arrays) put_value(s, key, a, depth + 1);
  } else {
    if (v.array_size() != v.ints.size()) fail("GGUF writer: '{}': mixed array", key);
    for (int64_t i : v.ints) {
      if (!fits(et, i)) {
        fail("GGUF writer: metadata '{}': element {} does not fit {}", key, i, gguf_type_name(et));
      }
      put_int(s, et, static_cast<uint64_t>(i));
    }
  }
}

// The integer in a general.alignment value, or 0 when it is not a non-negative integer.
uint64_t alignment_value(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.scalar)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.scalar))
    return *i > 0 ? static_cast<uint64_t>(*i) : 0;
  return 0;
}

GgufValue array_of(GgufType elem) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem_type = elem;
  return v;
}

}  // namespace

GgufValue gguf_uint(GgufType type, uint64_t v) {
  if (!is_unsigned(type)) fail("gguf_uint: {} is not an unsigned type", gguf_type_name(type));
  if (v > unsigned_max(type)) fail("gguf_uint: {} does not fit {}", v, gguf_type_name(type));
  GgufValue out;
  out.type = type;
  out.scalar = v;
  return out;
}

GgufValue gguf_int(GgufType type, int64_t v) {
  if (!is_signed(type)) fail("gguf_int: {} is not a signed type", gguf_type_name(type));
  if (!fits(type, v)) fail("gguf_int: {} does not fit {}", v, gguf_type_name(type));
  GgufValue out;
  out.type = type;
  out.scalar = v;
  return out;
}

GgufValue gguf_float(GgufType type, double v) {
  if (!is_float(type)) fail("gguf_float: {} is not a float type", gguf_type_name(type));
  GgufValue out;
  out.type = type;
  out.scalar = type == GgufType::f32 ? static_cast<double>(static_cast<float>(v)) : v;
  return out;
}

GgufValue gguf_bool(bool v) {
  GgufValue out;
  out.type = GgufType::boolean;
  out.scalar = v;
  return out;
}

GgufValue gguf_string(std::string v) {
  GgufValue out;
  out.type = GgufType::string;
  out.scalar = std::move(v);
  return out;
}

GgufValue gguf_int_array(GgufType elem, std::vector<int64_t> values) {
  if (!is_unsigned(elem) && !is_signed(elem) && elem != GgufType::boolean) {
    fail("gguf_int_array: {} is not an integer or bool type", gguf_type_name(elem));
  }
  for (int64_t v : values) {
    if (!fits(elem, v)) fail("gguf_int_array: {} does not fit {}", v, gguf_type_name(elem));
  }
  GgufValue out = array_of(elem);
  out.ints = std::move(values);
  return out;
}

GgufValue gguf_float_array(GgufType elem, std::vector<double> values) {
  if (!is_float(elem)) fail("gguf_float_array: {} is not a float type", gguf_type_name(elem));
  GgufValue out = array_of(elem);
  if (elem == GgufType::f32) {
    for (auto& v : values) v = static_cast<double>(static_cast<float>(v));
  }
  out.floats = std::move(values);
  return out;
}

GgufValue gguf_string_array(std::vector<std::string> values) {
  GgufValue out = array_of(GgufType::string);
  out.strings = std::move(values);
  return out;
}

GgufValue gguf_nested_array(std::vector<GgufValue> arrays) {
  for (const auto& a : arrays) {
    if (a.type != GgufType::array) fail("gguf_nested_array: every element must be an array");
  }
  GgufValue out = array_of(GgufType::array);
  out.arrays = std::move(arrays);
  return out;
}

GgufWriter::GgufWriter(uint64_t alignment, uint32_t version)
    : alignment_(alignment), version_(version) {
  if (alignment == 0 || alignment > 65536 || (alignment & (alignment - 1)) != 0) {
    fail("GGUF writer: alignment {} is not a power of two up to 65536", alignment);
  }
  if (version != 2 && version != 3) fail("GGUF writer: version {} (expected 2 or 3)", version);
}

GgufWriter& GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  kv_.emplace_back(key, std::move(value));
  return *this;
}

uint64_t GgufWriter::tensor_size(const std::string& name, std::span<const int64_t> shape,
                                 uint32_t type) {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  if (ti == nullptr) fail("GGUF writer: tensor '{}': unknown ggml type {}", name, type);
  if (shape.empty() || shape.size() > 4) {
    fail("GGUF writer: tensor '{}' has {} dimensions, expected 1 to 4", name, shape.size());
  }
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0 || static_cast<uint64_t>(d) > (uint64_t{1} << 48) / n) {
      fail("GGUF writer: tensor '{}' has an invalid or too large dimension {}", name, d);
    }
    n *= static_cast<uint64_t>(d);
  }
  if (shape[0] % ti->block_size != 0) {
    fail("GGUF writer: tensor '{}' row of {} values is not a whole number of {} blocks", name,
         shape[0], ti->name);
  }
  return n / static_cast<uint64_t>(ti->block_size) * static_cast<uint64_t>(ti->type_size);
}

GgufWriter& GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> shape,
                                   GgmlType type, std::span<const uint8_t> data) {
  const auto type_id = static_cast<uint32_t>(type);
  const uint64_t need = tensor_size(name, shape, type_id);
  if (data.size() != need) {
    fail("GGUF writer: tensor '{}' needs {} bytes of {} data, got {}", name, need,
         ggml_type_name(type_id), data.size());
  }
  for (const auto& t : tensors_) {
    if (t.name == name) fail("GGUF writer: duplicate tensor name '{}'", name);
  }
  tensors_.push_back({name, std::move(shape), type_id, {data.begin(), data.end()}});
  return *this;
}

GgufWriter& GgufWriter::add_zero_tensor(const std::string& name, std::vector<int64_t> shape,
                                        GgmlType type) {
  const std::vector<uint8_t> zeros(tensor_size(name, shape, static_cast<uint32_t>(type)), 0);
  return add_tensor(name, std::move(shape), type, zeros);
}

std::vector<uint8_t> GgufWriter::header() const {
  std::vector<uint8_t> out;
  Sink s(out);
  s.put<uint32_t>(0x46554747);  // "GGUF"
  s.put<uint32_t>(version_);
  s.put<uint64_t>(tensors_.size());
  // A non-default alignment must be in the metadata; it goes first unless the caller set it.
  const bool add_alignment =
      alignment_ != 32 && std::none_of(kv_.begin(), kv_.end(), [](const auto& kv) {
        return kv.first == "general.alignment";
      });
  s.put<uint64_t>(kv_.size() + (add_alignment ? 1 : 0));
  if (add_alignment) {
    s.put_string("general.alignment");
    s.put(static_cast<uint32_t>(GgufType::u32));
    s.put(static_cast<uint32_t>(alignment_));
  }
  for (const auto& [key, value] : kv_) {
    if (key == "general.alignment" && alignment_value(value) != alignment_) {
      fail("GGUF writer: general.alignment {} disagrees with the writer's alignment {}",
           value.to_string(), alignment_);
    }
    s.put_string(key);
    s.put(static_cast<uint32_t>(value.type));
    put_value(s, key, value, 0);
  }
  uint64_t offset = 0;  // relative to the data section
  for (const auto& t : tensors_) {
    s.put_string(t.name);
    s.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) s.put<uint64_t>(static_cast<uint64_t>(d));
    s.put<uint32_t>(t.type);
    s.put<uint64_t>(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  s.pad_to(alignment_);
  return out;
}

std::vector<uint8_t> GgufWriter::bytes() const {
  std::vector<uint8_t> out = header();
  Sink s(out);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    s.pad_to(alignment_);
  }
  return out;
}

uint64_t GgufWriter::write(const std::string& path) const {
  // Streamed tensor by tensor: a multi-gigabyte model is not copied into one buffer first.
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("{}: cannot open for writing", path);
  const auto put = [&](const uint8_t* p, size_t n) {
    f.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n));
  };
  const std::vector<uint8_t> head = header();
  put(head.data(), head.size());
  uint64_t size = head.size();
  const std::vector<uint8_t> zeros(alignment_, 0);
  for (const auto& t : tensors_) {
    put(t.data.data(), t.data.size());
    const uint64_t padded = (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
    put(zeros.data(), padded - t.data.size());
    size += padded;
  }
  if (!f) fail("{}: write failed (disk full?)", path);
  return size;
}

}  // namespace kvpack::model
