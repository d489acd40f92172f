// A weight matrix as the kernels see it: a read-only view of rows of ggml blocks, usually
// pointing into a memory-mapped GGUF file. W has `rows` outputs and `cols` inputs; GGUF stores
// it with ne0 = cols (contiguous) and ne1 = rows, so row r holds the weights of output r.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/ggml_type.h"

namespace kvpack::model {

struct GgufTensor;
class GgufFile;

// "F32, F16, BF16, Q8_0, ...": the types kvpack computes with, for error messages.
std::string supported_weight_types();

// Throws Error naming the first tensor of the file whose type kvpack does not compute with (as
// from_tensor does), so a model is refused before anything is allocated for it.
void check_weight_types(const GgufFile& file);

struct WeightMatrix {
  std::string name;  // tensor name, for errors
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;               // output dim (ne1)
  int64_t cols = 0;               // input dim (ne0), a multiple of the type's block size
  size_t row_bytes = 0;           // bytes from one row to the next
  const uint8_t* data = nullptr;  // rows * row_bytes bytes

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
  size_t bytes() const { return static_cast<size_t>(rows) * row_bytes; }

  // Views a 1-D or 2-D GGUF tensor (further dims must be 1). Throws Error naming the tensor
  // for an unsupported type ("tensor 'blk.0.attn_q.weight' has type Q4_K, which kvpack does not
  // support yet (supported: ...)") or shape.
  static WeightMatrix from_tensor(const GgufTensor& t);
};

}  // namespace kvpack::model
