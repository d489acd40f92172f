#include "model/weights.h"

#include "base/error.h"
#include "model/gguf.h"
#include "model/quant_ref.h"

namespace kvpack::model {

std::string_view supported_weight_types() {
  return "F32, F16, BF16, Q8_0, Q4_0";
}

WeightMatrix WeightMatrix::from_tensor(const GgufTensor& t) {
  const auto type = static_cast<GgmlType>(t.type);
  if (ggml_type_info(t.type) == nullptr || !is_weight_type(type)) {
    fail("tensor '{}' has type {}, which kvpack does not support yet (supported: {})", t.name,
         ggml_type_name(t.type), supported_weight_types());
  }
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
