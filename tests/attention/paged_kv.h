// Test support: a hand-built paged K/V cache for one layer (a page pool with scattered page ids
// plus an f32 tail), the data it was built from, and the tolerance an attention output must meet
// against the double reference, derived from float arithmetic bounds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/aligned.h"
#include "kvpack/attention.h"
#include "kvpack/cache.h"
#include "kvpack/format.h"

namespace kvpack::testing {

enum class Data {
  gaussian,  // N(0, 1) keys, values and queries
  outliers,  // a few key channels 10-30x larger, as real keys have
  sink,      // token 0's key aligned with the queries' shared direction (dominates), big value
};
std::string data_name(Data d);

struct KvShape {
  int n_kv_heads = 2;
  int head_dim_k = 128;
  int head_dim_v = 128;
  int page_tokens = 32;
  int n_tokens = 1;     // total tokens
  int tail_tokens = 0;  // of which unencoded (the rest fill whole pages)
};

// A layer's cache built by encoding data with the codecs, pages in a shuffled pool.
class PagedKv {
 public:
  PagedKv(format::FormatId k, format::FormatId v, const KvShape& shape, Data data, uint64_t seed);

  const cache::LayerView& view() const { return view_; }
  const KvShape& shape() const { return shape_; }
  // Queries for n_new tokens x n_q_heads, drawn to match the data kind.
  std::vector<float> queries(int n_new, int n_q_heads, uint64_t seed) const;
  // Largest 2-norm of the keys as given (before encoding).
  double max_key_norm() const { return max_key_norm_; }

 private:
  KvShape shape_;
  Data data_;
  double max_key_norm_ = 0;
  std::vector<float> bias_;  // [head_dim_k] the direction queries share (Data::sink)
  std::unique_ptr<format::Codec> k_codec_, v_codec_;
  AlignedArray<uint8_t> k_pool_, v_pool_;
  std::vector<uint32_t> page_ids_;
  std::vector<float> k_tail_, v_tail_;  // [head][capacity][dim]
  cache::LayerView view_;
};

// Per-element bound on |out - reference| for attention over `view` (same semantics as
// attention::reference), for the kernels attention uses under `params` as kernel_expect.h states
// them: logits exact up to f32 rounding of the dot products, or also carrying worst-case bounds
// of the int8 query rounding and int8 table errors; values exact up to f32 rounding, or also
// carrying the worst-case rounding of the integer weights. Tight for the codec kernels and the
// float formats; the SIMD kernels of the integer formats are checked against
// same_rounding.h instead, whose tolerance is f32 rounding alone.
// max_key_norm: PagedKv::max_key_norm() (bounds QJL residuals).
std::vector<double> tolerance(const cache::LayerView& view, const float* q, int n_new,
                              int n_q_heads, const attention::Params& params, double max_key_norm);

// Largest |a - b| / tol over elements, and where; < 1 passes.
struct Excess {
  double worst = 0;
  size_t index = 0;
};
Excess excess(const std::vector<float>& a, const std::vector<float>& b,
              const std::vector<double>& tol);

}  // namespace kvpack::testing
