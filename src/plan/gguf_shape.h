// Model shape from an opened GGUF (split from plan.h so the fuzzer and tests can feed a parsed
// buffer without a file).
#pragma once

#include <optional>

#include "kvpack/plan.h"
#include "model/gguf.h"

namespace kvpack::plan {

// model::read_model_spec(file) (its keys and defaults are documented there) with the weights
// sized as in plan.h. Throws Error naming the file and the key on anything missing or out of
// range.
ModelShape gguf_shape(const model::GgufFile& file, std::optional<double> weight_bits);

}  // namespace kvpack::plan
