// A GGUF's model shape for the planner: model::read_model_spec() for the description, plus the
// weights' size from the tensor infos (never tensor data).
#include "plan/gguf_shape.h"

#include <fmt/format.h>

#include "base/error.h"
#include "model/model_spec.h"

namespace kvpack::plan {
namespace {

void read_weights(const model::GgufFile& f, std::optional<double> weight_bits, ModelShape& m) {
  double params = 0;
  for (const auto& t : f.tensors()) params += static_cast<double>(t.n_elements());
  m.params = params;
  if (weight_bits) {
    if (!(*weight_bits > 0 && *weight_bits <= 64)) {
      fail("invalid weight bits {}: expected a number above 0 and at most 64", *weight_bits);
    }
    m.weight_bytes = static_cast<uint64_t>(params * *weight_bits / 8.0);
    m.weights_from = fmt::format("{:.3g}B params x {:.3g} bits", params / 1e9, *weight_bits);
    return;
  }
  if (f.tensors().empty()) {
    fail("{}: has no tensors (a vocab-only file?); give --weights-bits to size weights", f.path());
  }
  m.weight_bytes = f.tensor_bytes();
  m.weights_from = fmt::format("GGUF tensor sizes ({} tensors)", f.tensors().size());
}

}  // namespace

ModelShape gguf_shape(const model::GgufFile& f, std::optional<double> weight_bits) {
  ModelShape m;
  static_cast<model::ModelSpec&>(m) = model::read_model_spec(f);
  m.source = f.path();
  read_weights(f, weight_bits, m);
  return m;
}

ModelShape gguf_shape(const std::string& path, std::optional<double> weight_bits) {
  return gguf_shape(model::GgufFile::open(path), weight_bits);
}

}  // namespace kvpack::plan
