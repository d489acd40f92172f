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

size_t attend_pages(const SpanArgs& args, const QueryRows& rows, size_t page_begin, size_t page_end,
                    SpanScratch& s, const Partial& out) {
  const cache::LayerView& view = *args.view;
  const int pt = view.page_tokens;
  const size_t per_chunk = static_cast<size_t>(chunk_pages(pt));
  const size_t stride = logit_stride(pt);
  Prefetcher pf(view, args.h0, args.n_heads, page_begin, page_end, per_chunk);
  const size_t heads = static_cast<size_t>(args.n_heads);
  BlockSet kb{s.k_slices, 0, args.h0, args.n_heads, view.k_codec->head_bytes()};
  BlockSet vb{s.v_slices, 0, args.h0, args.n_heads, view.v_codec->head_bytes()};
  size_t read = 0;
  for (size_t c = page_begin; c < page_end; c += per_chunk) {
    const int np = static_cast<int>(std::min(per_chunk, page_end - c));
    const int64_t pos0 = static_cast<int64_t>(view.first_page + c) * pt;
    if (!chunk_ranges(rows, pos0, np * pt, s)) {
      // Keep the prefetch cursor in step with the blocks it expected us to read.
      pf.advance(np * heads * (kb.head_bytes + vb.head_bytes));
      continue;
    }
    for (int i = 0; i < np; ++i) {
      const uint32_t id = view.page_ids[c + i];
      s.k_slices[i] = view.k_pages + id * view.k_page_stride;
      s.v_slices[i] = view.v_pages + id * view.v_page_stride;
    }
    kb.n_pages = vb.n_pages = np;
    args.k->score(*view.k_codec, kb, rows.prepared, rows.per_head, s.logits, stride, pf);
    softmax_step(s.logits, stride, rows.count, np * pt, s.lo, s.hi, args.softcap, out.m, out.l,
                 s.alpha);
    rescale(out, rows.count, s.alpha);
    args.v->accumulate(*view.v_codec, vb, s.logits, stride, rows.per_head, out.acc, pf);
    read += static_cast<size_t>(np);
  }
  return read;
}

void attend_tail(const SpanArgs& args, const QueryRows& rows, SpanScratch& s, const Partial& out) {
  const cache::LayerView& view = *args.view;
  const int64_t enc = view.encoded_tokens();
  const size_t stride = logit_stride(view.page_tokens);
  const int step = static_cast<int>(stride);
  for (int t0 = 0; t0 < view.tail_tokens; t0 += step) {
    const int n = std::min(step, view.tail_tokens - t0);
    if (!chunk_ranges(rows, enc + t0, n, s)) continue;
    const int per = rows.per_head;
    for (int h = 0; h < args.n_heads; ++h) {
      score_tail(view.k_tail_row(args.h0 + h, t0), view.head_dim_k, n, view.head_dim_k,
                 rows.scaled + static_cast<size_t>(h) * per * view.head_dim_k, per,
                 s.logits + h * per * stride, stride);
    }
    softmax_step(s.logits, stride, rows.count, n, s.lo, s.hi, args.softcap, out.m, out.l, s.alpha);
    rescale(out, rows.count, s.alpha);
    for (int h = 0; h < args.n_heads; ++h) {
      accumulate_tail(view.v_tail_row(args.h0 + h, t0), view.head_dim_v, n, view.head_dim_v,
                      s.logits + h * per * stride, stride, per, out.acc + h * per * out.acc_floats);
    }
  }
}

}  // namespace kvpack::attention::detail
