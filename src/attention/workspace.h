// Internal: the memory behind attention::Workspace, and how a call carves it. Every size here
// follows from head counts, head dims, the page size and the thread count, never from the
// context length: kernels read pages in place, so no buffer ever holds a copy of the cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention/kernels.h"
#include "attention/merge.h"
#include "attention/prefix_plan.h"
#include "attention/span.h"
#include "base/aligned.h"
#include "kvpack/attention.h"

namespace kvpack::attention {

struct Workspace::Buffers {
  AlignedArray<uint8_t> shared;  // partial results that outlive one task (decode's KV splits)
  size_t shared_bytes = 0;
  std::vector<AlignedArray<uint8_t>> per_thread;  // one work item's scratch per thread
  size_t thread_bytes = 0;
  detail::PrefixPlan prefix;  // decode_batch's shared-prefix plan, rebuilt per call

  // Grows (never shrinks) to at least these sizes.
  void ensure(size_t shared_need, size_t thread_need, int n_threads);
  size_t bytes() const { return shared_bytes + thread_bytes * per_thread.size(); }
};

namespace detail {

// Hands out 64-byte aligned arrays from a buffer in order; with a null base it only measures.
class Carver {
 public:
  explicit Carver(uint8_t* base) : base_(base) {}
  template <typename T>
  T* take(size_t n) {
    T* p = base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + used_);
    used_ += round_up(n * sizeof(T), kCacheLine);
    return p;
  }
  size_t used() const { return used_; }

 private:
  uint8_t* base_;
  size_t used_ = 0;
};

// What one call's buffers depend on.
struct Geometry {
  int head_dim_k = 0;
  int head_dim_v = 0;
  int page_tokens = 0;
  size_t query_bytes = 0;  // per row, from the K kernel
  size_t acc_floats = 0;   // per row: the V codec's accumulator (its basis)

  Geometry(const cache::LayerView& view, const KKernel& k);
};

// Prepared query rows and their key ranges (QueryRows points into these).
struct RowBuffers {
  uint8_t* prepared = nullptr;  // [rows][query_bytes]
  float* scaled = nullptr;      // [rows][head_dim_k]
  int64_t* lo = nullptr;        // [rows]
  int64_t* hi = nullptr;        // [rows]

  // The same buffers from row `row` on.
  RowBuffers from(int row, const Geometry& g) const;
};
RowBuffers carve_rows(Carver& c, const Geometry& g, int rows);

// One thread's scratch for a work item of up to `rows` query rows.
struct ThreadScratch {
  SpanScratch span;
  RowBuffers query;          // prefill: the item's rows
  Partial pages;             // prefill: this item's page state
  Partial tail;              // prefill: this item's tail state
  MergeStaging staging;      // [rows][acc_floats] + [rows]
  Partial* parts = nullptr;  // [n_parts] views of states being merged
};

// n_parts: how many partial states one merge combines (decode: splits + 1).
ThreadScratch carve_thread(Carver& c, const Geometry& g, int rows, int n_parts = 1);

// A partial state of `rows` rows of `floats` accumulator floats each, carved from c.
Partial carve_partial(Carver& c, int rows, size_t floats);

}  // namespace detail
}  // namespace kvpack::attention
