// GGUF writer (versions 2 and 3): metadata of every type including nested arrays, tensors with
// alignment and zero padding. Tests use it to build files (synthetic models, corrupt inputs),
// the fuzzer to make its seed corpus, and the probe-model export to save models. The output is
// what GgufFile reads back: writer -> reader round-trips every value and tensor byte.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/gguf.h"

namespace kvpack::model {

// Builders for metadata values: the writer takes the same GgufValue the reader returns. Each
// throws Error when the value does not fit the type (e.g. 300 as u8) or the type is wrong.
GgufValue gguf_uint(GgufType type, uint64_t v);  // u8, u16, u32, u64
GgufValue gguf_int(GgufType type, int64_t v);    // i8, i16, i32, i64
GgufValue gguf_float(GgufType type, double v);   // f32, f64
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
// Arrays: integer (and bool) elements, float elements, strings, and arrays of arrays.
GgufValue gguf_int_array(GgufType elem, std::vector<int64_t> values);
GgufValue gguf_float_array(GgufType elem, std::vector<double> values);
GgufValue gguf_string_array(std::vector<std::string> values);
GgufValue gguf_nested_array(std::vector<GgufValue> arrays);  // every element an array

// Collects metadata and tensors, then serializes them. Layout: header, metadata in insertion
// order, tensor infos, zero padding to `alignment`, then each tensor's data at an offset that is
// a multiple of `alignment`, each padded with zeros to the next multiple (as ggml writes them).
class GgufWriter {
 public:
  // alignment: a power of two. When it is not 32 and no general.alignment key is set, bytes()
  // stores it as general.alignment (u32) ahead of the other keys.
  explicit GgufWriter(uint64_t alignment = 32, uint32_t version = 3);

  // Adds or replaces a metadata key (replacing keeps the key's original position).
  GgufWriter& set(const std::string& key, GgufValue value);
  // Adds a tensor; `data` must hold exactly the bytes its type and shape need (checked).
  // shape: ne[0] (contiguous) first, as ggml.
  GgufWriter& add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                         std::span<const uint8_t> data);
  // As add_tensor, with zero-filled data (shape-only models for tests).
  GgufWriter& add_zero_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type);

  // The file's bytes. Throws Error naming the key when a value is malformed (e.g. a u64 array
  // element above 2^63 or a general.alignment that disagrees with the constructor's).
  std::vector<uint8_t> bytes() const;
  // Writes bytes() to `path` (streamed, without building them in memory) and returns their
  // count; throws Error naming the path when it cannot.
  uint64_t write(const std::string& path) const;

  // Bytes one tensor of this type and shape needs; throws Error naming the tensor when the
  // type is unknown or the row is not a whole number of blocks.
  static uint64_t tensor_size(const std::string& name, std::span<const int64_t> shape,
                              uint32_t type);

 private:
  // Everything before the first tensor's data, padding included.
  std::vector<uint8_t> header() const;

  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_;
  uint32_t version_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace kvpack::model
