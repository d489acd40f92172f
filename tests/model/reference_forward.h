// A plain scalar Llama forward pass in double, written from the paper with no kvpack kernels (no
// matmul, ops, rope, cache or attention code): the readable specification the optimized
// model::Forward is tested against.
//
// Each step is a function from inputs to outputs that also returns, per output element, the
// bound an optimized kernel given the same (f32) inputs must meet, derived from the weight types
// as docs/weights.md ("Tolerances") does: f32 rounding of each kernel (gamma terms), the q8_0
// activation error of Q8_0/Q4_0 matvecs on the int8 path, and the rounding of the cache's K/V
// format. Tests feed the steps the optimized forward's own intermediate tensors
// (ForwardOptions::trace), so every step is checked against a bound of its own; composed end to
// end, worst-case bounds grow by ~sqrt(cols) per matvec and say nothing after a layer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/matmul.h"
#include "model/weights.h"

namespace kvpack::model::testing {

struct ReferenceOptions {
  QuantDot dot = QuantDot::kInt8;  // how the optimized path multiplies Q8_0/Q4_0 weights
  double kv_rounding = 0.0;        // relative rounding of stored K/V: 0 (f32), 2^-11 (f16)
};

// Exact values and the per-element bound an optimized kernel must meet.
struct Bounded {
  std::vector<double> v;
  std::vector<double> e;
};

using Row = std::span<const double>;

class ReferenceLlama {
 public:
  ReferenceLlama(const GgufFile& file, ReferenceOptions options);

  int n_layers() const { return n_layers_; }
  int n_embd() const { return n_embd_; }
  int n_vocab() const { return n_vocab_; }

  // ---- the steps, one token (row) at a time ----
  Bounded embed(int32_t token) const;
  // RMSNorm(x) * w with the norm weight `tensor` (e.g. "blk.0.attn_norm.weight").
  Bounded rms_norm(const std::string& tensor, Row x) const;
  // W x with the matrix `tensor` ("output.weight" falls back to token_embd when tied).
  Bounded project(const std::string& tensor, Row x) const;
  // Interleaved RoPE of every head of x at `pos`.
  Bounded rope(Row x, int64_t pos) const;
  // softmax(q k^T / sqrt(d)) v for query q (all heads) over keys / values of positions 0..n-1.
  Bounded attention(Row q, std::span<const std::vector<double>> keys,
                    std::span<const std::vector<double>> values) const;
  Bounded swiglu(Row gate, Row up) const;
  Bounded add(Row x, Row y) const;

  // ---- the whole forward, free-running in double ----
  // Feeds `token` at the next position and returns the logits there.
  std::vector<double> step(int32_t token);

 private:
  struct Mat {
    WeightMatrix w;         // the tensor as stored (its type sets the kernel error)
    std::vector<double> a;  // (rows, cols) dequantized
  };
  const Mat& mat(const std::string& tensor) const;

  ReferenceOptions opt_;
  int n_layers_, n_embd_, n_heads_, n_kv_heads_, head_dim_, n_vocab_;
  double eps_, rope_base_;
  std::vector<double> rope_factors_;  // (head_dim / 2) or empty
  std::vector<std::pair<std::string, Mat>> mats_;
  // Free-running state: (layer)(position) K after RoPE and V, (n_kv_heads * head_dim) each.
  std::vector<std::vector<std::vector<double>>> k_, v_;
  int64_t pos_ = 0;
};

}  // namespace kvpack::model::testing
