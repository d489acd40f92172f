// GGUF reader (versions 2 and 3): metadata of every type, arrays, tensor infos and memory-mapped
// tensor data. Every offset and size is checked before use; errors name the file, the field and
// what was expected. Reading metadata never touches tensor data (the map is lazy).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "model/ggml_type.h"

namespace kvpack::model {

enum class GgufType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value. Scalars are widened (integers to int64/uint64, floats to double); arrays
// keep their element type and store elements in the vector matching it.
struct GgufValue {
  GgufType type = GgufType::u8;
  std::variant<std::monostate, int64_t, uint64_t, double, bool, std::string> scalar;
  // Arrays only:
  GgufType elem_type = GgufType::u8;
  std::vector<int64_t> ints;         // integer and bool elements (u64 above 2^63 is refused)
  std::vector<double> floats;        // f32 / f64 elements
  std::vector<std::string> strings;  // string elements
  std::vector<GgufValue> arrays;     // nested arrays
  size_t array_size() const;
  bool is_integer() const;  // scalar of an integer type
  // Short human-readable rendering; arrays are abbreviated after `max_items` items.
  std::string to_string(size_t max_items = 8) const;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> shape;  // ne[0] (contiguous) first, as ggml
  uint32_t type = 0;           // GgmlType id
  uint64_t offset = 0;         // relative to the data section
  uint64_t bytes = 0;          // size computed from type and shape
  const uint8_t* data = nullptr;
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Memory-maps and parses `path`. Throws Error("<path>: ...") on anything malformed.
  static GgufFile open(const std::string& path);
  // Parses a buffer the caller keeps alive (fuzzing, tests); `name` is used in errors.
  static GgufFile parse(std::span<const uint8_t> bytes, std::string name);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters: nullopt when the key is absent; Error when present with another type.
  std::optional<int64_t> get_int(std::string_view key) const;   // any integer type
  std::optional<double> get_float(std::string_view key) const;  // float or integer
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Array getters: nullptr when absent; Error when not an array of the right kind.
  const std::vector<std::string>* get_strings(std::string_view key) const;
  const std::vector<int64_t>* get_ints(std::string_view key) const;
  const std::vector<double>* get_floats(std::string_view key) const;
  // As above, but a missing key is an Error naming it.
  int64_t require_int(std::string_view key) const;
  std::string require_string(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  // Sum of all tensor sizes.
  uint64_t tensor_bytes() const;

 private:
  GgufFile() = default;
  void parse_all(std::span<const uint8_t> bytes);
  [[noreturn]] void type_error(std::string_view key, const GgufValue& v,
                               std::string_view expected) const;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t size_ = 0;
  void* map_ = nullptr;  // owned mapping, when opened from a path
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace kvpack::model
