#include "model/weights.h"

#include "base/error.h"
#include "model/gguf.h"
#include "model/quant_ref.h"

namespace kvpack::model {

std::string supported_weight_types() {
  return supported_weight_type_names();
}

namespace {

void check_type(const GgufTensor& t) {
  if (ggml_type_info(t.type) == nullptr || !is_weight_type(static_cast<GgmlType>(t.type))) {
    fail("tensor '{}' has type {}, which kvpack does not support yet (supported: {})", t.name,
         ggml_type_name(t.type), supported_weight_types());
  }
}

}  // namespace

void check_weight_types(const GgufFile& file) {
  for (const GgufTensor& t : file.tensors()) check_type(t);
}

WeightMatrix WeightMatrix::from_tensor(const GgufTensor& t) {
  const auto type = static_cast<GgmlType>(t.type);
  check_type(t);
  if (t.shape.empty() || t.shape.size() > 4) {
    fail("tensor '{}' has {} dimensions; a weight matrix needs 1 or 2", t.name, t.shape.size());
  }
  for (size_t i = 2; i < t.shape.size(); ++i) {
    if (t.shape[i] != 1) {
      fail("tensor '{}' has {} dimensions (ne{} = {}); a weight matrix needs 1 or 2", t.name,
           t.shape.size(), i, t.shape[i]);
    }
  }
  WeightMatrix w;
  w.name = t.name;
  w.type = type;
  w.cols = t.shape[0];
  w.rows = t.shape.size() > 1 ? t.shape[1] : 1;
  if (w.cols <= 0 || w.rows <= 0 || w.cols % weight_block_size(type) != 0) {
    fail("tensor '{}' of type {} has shape {}x{}; rows must be whole {}-value blocks", t.name,
         ggml_type_name(t.type), w.cols, w.rows, weight_block_size(type));
  }
  w.row_bytes = weight_row_bytes(type, w.cols);
  if (t.data == nullptr || t.bytes < w.bytes()) {
    fail("tensor '{}' holds {} bytes of data; a {}x{} {} matrix needs {}", t.name, t.bytes, w.cols,
         w.rows, ggml_type_name(t.type), w.bytes());
  }
  w.data = t.data;
  return w;
}

}  // namespace kvpack::model
