// Internal: the page walk shared by decode and prefill. One work item is a set of query rows of
// a range of KV heads against a range of pages (or against the unencoded tail); it produces a
// partial softmax state that callers merge (merge.cpp). Decode gives an item every head of the
// layer, so it streams whole page slices (all heads' blocks are contiguous in a slice); prefill
// gives it one head and many query tokens.
#pragma once

#include <cstddef>
#include <cstdint>

#include "attention/kernels.h"
#include "kvpack/cache.h"

namespace kvpack::attention::detail {

// Tokens scored per softmax step: pages are grouped into chunks of this many tokens so the
// per-step work (max, exp, rescale) is amortised over several pages (FACTS.md section 5, item 4).
inline constexpr int kChunkTokens = 128;
// Logit rows are padded to a multiple of this many floats (the widest SIMD vector).
inline constexpr int kLogitAlign = 16;

inline int chunk_pages(int page_tokens) {
  return page_tokens >= kChunkTokens ? 1 : kChunkTokens / page_tokens;
}
inline size_t logit_stride(int page_tokens) {
  const int n = chunk_pages(page_tokens) * page_tokens;
  return static_cast<size_t>((n + kLogitAlign - 1) / kLogitAlign * kLogitAlign);
}

// The query rows of one work item: per_head rows for each of its KV heads, head-major (row
// h * per_head + r). Row r sees keys at absolute positions [lo[r], hi[r]).
struct QueryRows {
  int count = 0;                      // n_heads * per_head
  int per_head = 0;                   // rows per KV head
  const uint8_t* prepared = nullptr;  // [count][K kernel query_bytes]
  const float* scaled = nullptr;      // [count][head_dim_k] f32, scaled (the tail reads this)
  const int64_t* lo = nullptr;
  const int64_t* hi = nullptr;
};

// Running softmax state of `rows` rows: max m, sum l, unnormalised acc [rows][acc_floats].
struct Partial {
  float* m = nullptr;
  float* l = nullptr;
  float* acc = nullptr;
  size_t acc_floats = 0;

  void reset(int rows) const;
};

// Per-thread buffers for one work item (sizes: span_scratch_floats()).
struct SpanScratch {
  float* logits = nullptr;             // [rows][logit_stride(page_tokens)]
  float* alpha = nullptr;              // [rows]
  int* lo = nullptr;                   // [rows], chunk-relative
  int* hi = nullptr;                   // [rows]
  const uint8_t** k_slices = nullptr;  // [chunk_pages]
  const uint8_t** v_slices = nullptr;  // [chunk_pages]
};

struct SpanArgs {
  const cache::LayerView* view = nullptr;
  int h0 = 0;  // the item's KV heads: [h0, h0 + n_heads)
  int n_heads = 1;
  const KKernel* k = nullptr;
  const VKernel* v = nullptr;
  float softcap = 0.0f;  // q was scaled by scale / softcap when this is non-zero (call.h)
};

// Rows against encoded pages [page_begin, page_end) of the heads, into `out` (codec acc basis).
// `out` must be reset (or hold an earlier state of the same rows) before the call. Returns the
// pages it read (chunks no row sees are skipped).
size_t attend_pages(const SpanArgs& args, const QueryRows& rows, size_t page_begin, size_t page_end,
                    SpanScratch& scratch, const Partial& out);

// Rows against the view's unencoded tail, into `out` (original basis, head_dim_v floats).
void attend_tail(const SpanArgs& args, const QueryRows& rows, SpanScratch& scratch,
                 const Partial& out);

}  // namespace kvpack::attention::detail
