#include "attention/call.h"

#include <algorithm>

#include "attention/validate.h"

namespace kvpack::attention::detail {

CallContext::CallContext(const cache::LayerView& view, int n_q_heads, const Params& params)
    : k(&select_k_kernel(*view.k_codec, params.codec_ops)),
      v(&select_v_kernel(*view.v_codec, params.codec_ops, params.exact_value_weights)),
      softcap(params.softcap),
      window(params.window),
      group(n_q_heads / view.n_kv_heads) {
  const double scale = logit_scale(view, params);
  // Softmax works in log2 units (kernels.h: softmax_step): fold log2(e) into q, except under a
  // soft cap, which the softmax step applies (and scales) before the exponentials.
  constexpr double kLog2e = 1.4426950408889634;
  fold = static_cast<float>(params.softcap > 0 ? scale / params.softcap : scale * kLog2e);
}

QueryRows load_rows(const cache::LayerView& view, const CallContext& ctx, int h0, int n_heads,
                    const float* q, int n_tokens, size_t token_stride, int64_t pos0,
                    const RowBuffers& s) {
  const int dk = view.head_dim_k;
  const int per_head = n_tokens * ctx.group;
  const size_t qbytes = ctx.k->query_bytes(*view.k_codec);
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < n_tokens; ++i) {
      const float* src = q + i * token_stride + static_cast<size_t>(h0 + h) * ctx.group * dk;
      const int row0 = h * per_head + i * ctx.group;
      float* dst = s.scaled + static_cast<size_t>(row0) * dk;
      for (int j = 0; j < ctx.group * dk; ++j) dst[j] = src[j] * ctx.fold;
      const int64_t pos = pos0 + i;
      const int64_t lo = ctx.window > 0 ? std::max<int64_t>(0, pos - ctx.window + 1) : 0;
      for (int g = 0; g < ctx.group; ++g) {
        s.lo[row0 + g] = lo;
        s.hi[row0 + g] = pos + 1;
      }
    }
    const size_t row0 = static_cast<size_t>(h) * per_head;
    ctx.k->prepare(*view.k_codec, h0 + h, s.scaled + row0 * dk, per_head, static_cast<size_t>(dk),
                   s.prepared + row0 * qbytes);
  }
  return rows_of(s, n_heads, per_head);
}

QueryRows rows_of(const RowBuffers& src, int n_heads, int per_head) {
  QueryRows out;
  out.count = n_heads * per_head;
  out.per_head = per_head;
  out.prepared = src.prepared;
  out.scaled = src.scaled;
  out.lo = src.lo;
  out.hi = src.hi;
  return out;
}

void visible_pages(const cache::LayerView& view, const QueryRows& rows, size_t* first,
                   size_t* last) {
  const int64_t lo = *std::min_element(rows.lo, rows.lo + rows.count);
  const int64_t hi = *std::max_element(rows.hi, rows.hi + rows.count);
  const int64_t pt = view.page_tokens;
  const int64_t n_pages = static_cast<int64_t>(view.page_ids.size());
  const auto base = static_cast<int64_t>(view.first_page);  // page_ids[0]'s page index
  *first = static_cast<size_t>(std::clamp(lo / pt - base, int64_t{0}, n_pages));
  *last = static_cast<size_t>(
      std::clamp((hi + pt - 1) / pt - base, static_cast<int64_t>(*first), n_pages));
}

}  // namespace kvpack::attention::detail
