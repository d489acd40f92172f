// Internal to src/model: the integer kernels of quant/int_kernels-inl.h as matmul.cpp calls them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned.h"
#include "model/matmul_kernels.h"

namespace kvpack {
class ThreadPool;
}

namespace kvpack::model {

// Per-thread buffers for quantized activations, grown on demand and reused across calls.
class IntScratch {
 public:
  // Quantizes x[n_tokens][cols] to the activation type of `type` (tokens in parallel on `pool`
  // for prefill) with the sums the current SIMD target's kernel for `type` reads.
  const IntActivations& prepare(const float* x, int64_t n_tokens, int64_t cols, GgmlType type,
                                ThreadPool& pool);

 private:
  AlignedArray<uint8_t> bytes_;
  size_t capacity_ = 0;
  IntActivations acts_;
};

// False on Highway's one-lane SCALAR fallback, which takes matmul.cpp's generic path.
bool has_int_kernels();

// Rows [r0, r1) of job (job.xi prepared for job.w's type) on the current SIMD target.
void matmul_rows_int(const MatmulJob& job, int64_t r0, int64_t r1);

// The integer dot policy the current target uses: "vnni", "maddubs", "portable" or "none".
const char* int_dot_name();

}  // namespace kvpack::model
