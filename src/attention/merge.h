// Internal: combining partial softmax states into outputs (split-KV decode and prefill).
#pragma once

#include "attention/span.h"
#include "kvpack/format.h"

namespace kvpack::attention::detail {

// Writes out[r][0..head_dim_v) for `rows` query rows of KV head `head` from:
//   parts[0..n_parts): page states in the V codec's accumulator basis (finish() maps them back),
//   tail: the tail's state in the original basis (acc_floats >= head_dim_v),
//   sinks: [rows] extra denominator logits, or nullptr.
// The rows are rows row0 .. row0 + rows - 1 of every state. Staging: merge [rows][acc_floats of
// the parts], tail_factor [rows].
struct MergeStaging {
  float* merge = nullptr;
  float* tail_factor = nullptr;
};
void merge_rows(const format::Codec& v_codec, int head, const Partial* parts, int n_parts,
                const Partial& tail, int row0, int rows, const float* sinks,
                const MergeStaging& staging, float* out);

}  // namespace kvpack::attention::detail
