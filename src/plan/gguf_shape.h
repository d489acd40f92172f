// Model shape from an opened GGUF (split from plan.h so the fuzzer and tests can feed a parsed
// buffer without a file).
#pragma once

#include <optional>

#include "kvpack/plan.h"
#include "model/gguf.h"

namespace kvpack::plan {

// Reads {arch}.block_count, {arch}.attention.head_count(_kv) (scalars or per-layer arrays),
// key_length / value_length, context_length, RoPE scaling, sliding_window and the sliding
// pattern (an integer period or a per-layer bool array; Gemma 2 and 3 default to 2 and 6).
// Throws Error naming the file and the key on anything missing or out of range.
ModelShape gguf_shape(const model::GgufFile& file, std::optional<double> weight_bits);

}  // namespace kvpack::plan
