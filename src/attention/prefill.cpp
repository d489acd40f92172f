// Causal prefill: a chunk of new tokens (already appended) against all earlier pages plus the
// chunk itself. Work items are (KV head, tile of query tokens): the tile's rows (tokens x group)
// walk the pages once, each row masked to its own causal (and window) range, and the item
// merges its page and tail states itself, so prefill needs no shared partials.
#include <algorithm>

#include "attention/call.h"
#include "attention/merge.h"
#include "attention/validate.h"
#include "attention/workspace.h"

namespace kvpack::attention {
namespace {

using detail::Carver;

// Query tokens per work item: enough rows to reuse each page across many queries, few enough
// that the tile's logits ([tokens x group][chunk]) stay in L2.
constexpr int kTileTokens = 16;

struct PrefillJob {
  const cache::LayerView* view;
  const float* q;
  int n_new;
  int n_q_heads;
  float* out;
  const Params* params;
  detail::CallContext ctx;
  detail::Geometry geo;
  int n_tiles;
};

void run_tile(const PrefillJob& job, int64_t task, detail::ThreadScratch& s) {
  const cache::LayerView& view = *job.view;
  // Later tiles see more keys: hand them out first so the last items claimed are short.
  const int tile = job.n_tiles - 1 - static_cast<int>(task / view.n_kv_heads);
  const int head = static_cast<int>(task % view.n_kv_heads);
  const int t0 = tile * kTileTokens;
  const int n = std::min(kTileTokens, job.n_new - t0);
  const size_t token_stride = static_cast<size_t>(job.n_q_heads) * view.head_dim_k;
  const int64_t pos0 = view.n_tokens() - job.n_new + t0;
  const detail::QueryRows qr = detail::load_rows(view, job.ctx, head, 1, job.q + t0 * token_stride,
                                                 n, token_stride, pos0, s.query);
  s.pages.reset(qr.count);
  s.tail.reset(qr.count);
  size_t first = 0, last = 0;
  detail::visible_pages(view, qr, &first, &last);
  const detail::SpanArgs args{&view, head, 1, job.ctx.k, job.ctx.v, job.ctx.softcap};
  detail::attend_pages(args, qr, first, last, s.span, s.pages);
  detail::attend_tail(args, qr, s.span, s.tail);
  const int g = job.ctx.group;
  const float* sinks = job.params->sinks ? job.params->sinks + head * g : nullptr;
  for (int i = 0; i < n; ++i) {
    float* out =
        job.out + ((static_cast<size_t>(t0) + i) * job.n_q_heads + static_cast<size_t>(head) * g) *
                      view.head_dim_v;
    detail::merge_rows(*view.v_codec, head, &s.pages, 1, s.tail, i * g, g, sinks, s.staging, out);
  }
}

}  // namespace

void prefill(const cache::LayerView& view, const float* q, int n_new, int n_q_heads, float* out,
             const Params& params, ThreadPool& pool, Workspace& ws) {
  detail::validate_call(view, n_new, n_q_heads, params);
  const detail::CallContext ctx(view, n_q_heads, params);
  const detail::Geometry geo(view, *ctx.k);
  const int rows = kTileTokens * ctx.group;
  Carver measure(nullptr);
  detail::carve_thread(measure, geo, rows);
  Workspace::Buffers& buf = ws.buffers();
  buf.ensure(0, measure.used(), pool.size());
  const PrefillJob job{
      &view, q, n_new, n_q_heads, out, &params, ctx, geo, (n_new + kTileTokens - 1) / kTileTokens};
  pool.parallel_for(static_cast<int64_t>(job.n_tiles) * view.n_kv_heads,
                    [&](int64_t task, int thread) {
                      Carver c(buf.per_thread[static_cast<size_t>(thread)].get());
                      detail::ThreadScratch s = detail::carve_thread(c, geo, rows);
                      run_tile(job, task, s);
                    });
}

}  // namespace kvpack::attention
