// Split-KV decode (flash-decoding): one query token per sequence. Work items are (sequence, KV
// head, split of the head's pages); each scores all query heads of the KV head's group together,
// so a page is read once per step, and leaves a partial (max, sum, acc) that a second pass merges
// per (sequence, KV head), adding the tail's partial and the sinks.
#include <algorithm>

#include "attention/call.h"
#include "attention/merge.h"
#include "attention/validate.h"
#include "attention/workspace.h"
#include "base/error.h"

namespace kvpack::attention {
namespace {

using detail::CallContext;
using detail::Carver;
using detail::Geometry;
using detail::Partial;

// Work items per thread to aim for, so dynamic claiming balances uneven items.
constexpr int kTasksPerThread = 4;
// Fewest pages a split may hold: below this its merge costs more than the parallelism gives.
constexpr int64_t kMinSplitPages = 16;

// The most splits per (sequence, KV head) for this many units and threads.
int max_splits(int64_t n_units, int n_threads) {
  const int64_t want = (static_cast<int64_t>(n_threads) * kTasksPerThread + n_units - 1) / n_units;
  return static_cast<int>(std::max<int64_t>(1, want));
}

// Shared layout: per unit (sequence, KV head), `splits` page states then one tail state.
class SharedLayout {
 public:
  SharedLayout(uint8_t* base, const Geometry& g, int splits, int rows)
      : base_(base), g_(g), splits_(splits), rows_(rows) {
    Carver page(nullptr);
    detail::carve_partial(page, rows, g.acc_floats);
    page_bytes_ = page.used();
    Carver tail(nullptr);
    detail::carve_partial(tail, rows, static_cast<size_t>(g.head_dim_v));
    unit_bytes_ = page_bytes_ * static_cast<size_t>(splits) + tail.used();
  }
  size_t bytes(int64_t n_units) const { return unit_bytes_ * static_cast<size_t>(n_units); }
  // Split s's page state of a unit; s == splits is its tail state.
  Partial slot(int64_t unit, int s) const {
    Carver c(base_ + unit * unit_bytes_ + page_bytes_ * static_cast<size_t>(s));
    return detail::carve_partial(c, rows_, s < splits_ ? g_.acc_floats : g_.head_dim_v);
  }

 private:
  uint8_t* base_;
  Geometry g_;
  int splits_;
  int rows_;
  size_t page_bytes_ = 0;
  size_t unit_bytes_ = 0;
};

size_t thread_bytes(const Geometry& g, int rows, int splits) {
  Carver c(nullptr);
  detail::carve_thread(c, g, rows, splits + 1);
  return c.used();
}

void check_batch(std::span<const cache::LayerView> views, int n_q_heads, const Params& params) {
  if (views.empty()) fail("attention: decode_batch needs at least one sequence");
  const cache::LayerView& v0 = views[0];
  for (const cache::LayerView& v : views) {
    detail::validate_call(v, 1, n_q_heads, params);
    if (v.k_codec != v0.k_codec || v.v_codec != v0.v_codec || v.n_kv_heads != v0.n_kv_heads) {
      fail("attention: decode_batch sequences must share the layer's codecs and head counts");
    }
  }
}

struct DecodeJob {
  std::span<const cache::LayerView> views;
  const float* q;
  int n_q_heads;
  float* out;
  const Params* params;
  CallContext ctx;
  Geometry geo;
  int splits;
  SharedLayout shared;
};

// Work item `task`: sequence, KV head and split of its pages; the last split also does the tail.
void run_item(const DecodeJob& job, int64_t task, detail::ThreadScratch& s) {
  const int64_t unit = task / job.splits;
  const int split = static_cast<int>(task % job.splits);
  const cache::LayerView& view = job.views[unit / job.views[0].n_kv_heads];
  const int head = static_cast<int>(unit % view.n_kv_heads);
  const int64_t seq = unit / view.n_kv_heads;
  const Partial part = job.shared.slot(unit, split);
  const Partial tail = job.shared.slot(unit, job.splits);
  const int rows = job.ctx.group;
  part.reset(rows);
  if (split == job.splits - 1) tail.reset(rows);
  const float* q = job.q + seq * job.n_q_heads * view.head_dim_k;
  const detail::QueryRows qr =
      detail::load_rows(view, job.ctx, head, q, 1, 0, view.n_tokens() - 1, s);
  size_t first = 0, last = 0;
  detail::visible_pages(view, qr, &first, &last);
  const detail::SpanArgs args{&view, head, job.ctx.k, job.ctx.v, job.ctx.softcap};
  // Splits beyond what this sequence's length supports stay empty.
  const int64_t span = static_cast<int64_t>(last - first);
  const int used = static_cast<int>(std::clamp<int64_t>(span / kMinSplitPages, 1, job.splits));
  if (split < used) {
    const size_t b = first + static_cast<size_t>(span * split / used);
    const size_t e = first + static_cast<size_t>(span * (split + 1) / used);
    detail::attend_pages(args, qr, b, e, s.span, part);
  }
  if (split == job.splits - 1) detail::attend_tail(args, qr, s.span, tail);
}

void merge_unit(const DecodeJob& job, int64_t unit, detail::ThreadScratch& s) {
  const cache::LayerView& view = job.views[unit / job.views[0].n_kv_heads];
  const int head = static_cast<int>(unit % view.n_kv_heads);
  const int64_t seq = unit / view.n_kv_heads;
  const int g = job.ctx.group;
  Partial* parts = s.parts;
  for (int i = 0; i <= job.splits; ++i) parts[i] = job.shared.slot(unit, i);
  const float* sinks = job.params->sinks ? job.params->sinks + head * g : nullptr;
  float* out = job.out + (seq * job.n_q_heads + static_cast<int64_t>(head) * g) * view.head_dim_v;
  detail::merge_rows(*view.v_codec, head, parts, job.splits, parts[job.splits], 0, g, sinks,
                     s.staging, out);
}

}  // namespace

size_t decode_workspace_bytes(const cache::LayerView& view, int n_q_heads, int n_threads) {
  detail::validate_call(view, 1, n_q_heads, Params{});
  const CallContext ctx(view, n_q_heads, Params{});
  const Geometry geo(view, *ctx.k);
  const int splits = max_splits(view.n_kv_heads, n_threads);
  return SharedLayout(nullptr, geo, splits, ctx.group).bytes(view.n_kv_heads) +
         thread_bytes(geo, ctx.group, splits) * static_cast<size_t>(n_threads);
}

void decode_batch(std::span<const cache::LayerView> views, const float* q, int n_q_heads,
                  float* out, const Params& params, ThreadPool& pool, Workspace& ws) {
  check_batch(views, n_q_heads, params);
  const CallContext ctx(views[0], n_q_heads, params);
  const Geometry geo(views[0], *ctx.k);
  const int64_t n_units = static_cast<int64_t>(views.size()) * views[0].n_kv_heads;
  const int splits = max_splits(n_units, pool.size());
  const int rows = ctx.group;
  Workspace::Buffers& buf = ws.buffers();
  buf.ensure(SharedLayout(nullptr, geo, splits, rows).bytes(n_units),
             thread_bytes(geo, rows, splits), pool.size());
  const DecodeJob job{views, q,       n_q_heads,
                      out,   &params, ctx,
                      geo,   splits,  SharedLayout(buf.shared.get(), geo, splits, rows)};
  auto scratch = [&](int thread) {
    Carver c(buf.per_thread[static_cast<size_t>(thread)].get());
    return detail::carve_thread(c, geo, rows, splits + 1);
  };
  pool.parallel_for(n_units * splits, [&](int64_t task, int thread) {
    detail::ThreadScratch s = scratch(thread);
    run_item(job, task, s);
  });
  pool.parallel_for(n_units, [&](int64_t unit, int thread) {
    detail::ThreadScratch s = scratch(thread);
    merge_unit(job, unit, s);
  });
}

void decode(const cache::LayerView& view, const float* q, int n_q_heads, float* out,
            const Params& params, ThreadPool& pool, Workspace& ws) {
  decode_batch(std::span<const cache::LayerView>(&view, 1), q, n_q_heads, out, params, pool, ws);
}

}  // namespace kvpack::attention
