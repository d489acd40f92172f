#include "attention/span.h"

#include <algorithm>
#include <limits>

namespace kvpack::attention::detail {
namespace {

// Chunk-relative visible columns of each row for a chunk of `n` tokens starting at `pos0`.
// Returns false when no row sees any of them.
bool chunk_ranges(const QueryRows& rows, int64_t pos0, int n, SpanScratch& s) {
  bool any = false;
  for (int r = 0; r < rows.count; ++r) {
    const int64_t lo = std::clamp<int64_t>(rows.lo[r] - pos0, 0, n);
    const int64_t hi = std::clamp<int64_t>(rows.hi[r] - pos0, 0, n);
    s.lo[r] = static_cast<int>(lo);
    s.hi[r] = static_cast<int>(std::max(lo, hi));
    any = any || hi > lo;
  }
  return any;
}

// acc rows *= alpha, skipping rows whose max did not move.
void rescale(const Partial& p, int rows, const float* alpha) {
  for (int r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    float* a = p.acc + r * p.acc_floats;
    for (size_t j = 0; j < p.acc_floats; ++j) a[j] *= alpha[r];
  }
}

}  // namespace

void Partial::reset(int rows) const {
  std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
  std::fill(l, l + rows, 0.0f);
  std::fill(acc, acc + rows * acc_floats, 0.0f);
}

void attend_pages(const SpanArgs& args, const QueryRows& rows, size_t page_begin, size_t page_end,
                  SpanScratch& s, const Partial& out) {
  const cache::LayerView& view = *args.view;
  const int pt = view.page_tokens;
  const size_t per_chunk = static_cast<size_t>(chunk_pages(pt));
  const size_t stride = logit_stride(pt);
  Prefetcher pf(view, args.head, page_begin, page_end, per_chunk);
  for (size_t c = page_begin; c < page_end; c += per_chunk) {
    const int np = static_cast<int>(std::min(per_chunk, page_end - c));
    const int64_t pos0 = static_cast<int64_t>(c) * pt;
    if (!chunk_ranges(rows, pos0, np * pt, s)) {
      // Keep the prefetch cursor in step with the blocks it expected us to read.
      pf.advance(np * (view.k_codec->head_bytes() + view.v_codec->head_bytes()));
      continue;
    }
    for (int i = 0; i < np; ++i) {
      s.k_blocks[i] = view.k_block(c + i, args.head);
      s.v_blocks[i] = view.v_block(c + i, args.head);
    }
    args.k->score(*view.k_codec, s.k_blocks, np, rows.prepared, rows.count, s.logits, stride, pf);
    softmax_step(s.logits, stride, rows.count, np * pt, s.lo, s.hi, args.softcap, out.m, out.l,
                 s.alpha);
    rescale(out, rows.count, s.alpha);
    args.v->accumulate(*view.v_codec, s.v_blocks, np, s.logits, stride, rows.count, out.acc, pf);
  }
}

void attend_tail(const SpanArgs& args, const QueryRows& rows, SpanScratch& s, const Partial& out) {
  const cache::LayerView& view = *args.view;
  const int64_t enc = view.encoded_tokens();
  const size_t stride = logit_stride(view.page_tokens);
  const int step = static_cast<int>(stride);
  for (int t0 = 0; t0 < view.tail_tokens; t0 += step) {
    const int n = std::min(step, view.tail_tokens - t0);
    if (!chunk_ranges(rows, enc + t0, n, s)) continue;
    score_tail(view.k_tail_row(args.head, t0), view.head_dim_k, n, view.head_dim_k, rows.scaled,
               rows.count, s.logits, stride);
    softmax_step(s.logits, stride, rows.count, n, s.lo, s.hi, args.softcap, out.m, out.l, s.alpha);
    rescale(out, rows.count, s.alpha);
    accumulate_tail(view.v_tail_row(args.head, t0), view.head_dim_v, n, view.head_dim_v, s.logits,
                    stride, rows.count, out.acc);
  }
}

}  // namespace kvpack::attention::detail
