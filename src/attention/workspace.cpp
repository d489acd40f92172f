#include "attention/workspace.h"

#include <algorithm>

namespace kvpack::attention {

Workspace::Workspace() : buffers_(std::make_unique<Buffers>()) {}
Workspace::~Workspace() = default;

size_t Workspace::bytes() const {
  return buffers_->bytes();
}

void Workspace::Buffers::ensure(size_t shared_need, size_t thread_need, int n_threads) {
  if (shared_need > shared_bytes) {
    shared = make_aligned<uint8_t>(shared_need);
    shared_bytes = shared_need;
  }
  if (thread_need > thread_bytes) {
    per_thread.clear();
    thread_bytes = thread_need;
  }
  while (per_thread.size() < static_cast<size_t>(n_threads)) {
    per_thread.push_back(make_aligned<uint8_t>(thread_bytes));
  }
}

namespace detail {

Geometry::Geometry(const cache::LayerView& view, const KKernel& k)
    : head_dim_k(view.head_dim_k),
      head_dim_v(view.head_dim_v),
      page_tokens(view.page_tokens),
      query_bytes(k.query_bytes(*view.k_codec)),
      acc_floats(view.v_codec->acc_floats()) {}

Partial carve_partial(Carver& c, int rows, size_t floats) {
  Partial p;
  p.m = c.take<float>(rows);
  p.l = c.take<float>(rows);
  p.acc = c.take<float>(rows * floats);
  p.acc_floats = floats;
  return p;
}

RowBuffers carve_rows(Carver& c, const Geometry& g, int rows) {
  RowBuffers b;
  b.prepared = c.take<uint8_t>(rows * g.query_bytes);
  b.scaled = c.take<float>(static_cast<size_t>(rows) * g.head_dim_k);
  b.lo = c.take<int64_t>(rows);
  b.hi = c.take<int64_t>(rows);
  return b;
}

RowBuffers RowBuffers::from(int row, const Geometry& g) const {
  const size_t r = static_cast<size_t>(row);
  return {prepared + r * g.query_bytes, scaled + r * g.head_dim_k, lo + r, hi + r};
}

ThreadScratch carve_thread(Carver& c, const Geometry& g, int rows, int n_parts) {
  ThreadScratch s;
  const size_t n_chunk = static_cast<size_t>(chunk_pages(g.page_tokens));
  s.span.logits = c.take<float>(rows * logit_stride(g.page_tokens));
  s.span.alpha = c.take<float>(rows);
  s.span.lo = c.take<int>(rows);
  s.span.hi = c.take<int>(rows);
  s.span.k_slices = c.take<const uint8_t*>(n_chunk);
  s.span.v_slices = c.take<const uint8_t*>(n_chunk);
  s.query = carve_rows(c, g, rows);
  s.pages = carve_partial(c, rows, g.acc_floats);
  s.tail = carve_partial(c, rows, static_cast<size_t>(g.head_dim_v));
  s.staging.merge = c.take<float>(rows * g.acc_floats);
  s.staging.tail_factor = c.take<float>(rows);
  s.parts = c.take<Partial>(static_cast<size_t>(n_parts));
  return s;
}

}  // namespace detail
}  // namespace kvpack::attention
