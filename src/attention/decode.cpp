// Split-KV decode (flash-decoding): one query token per sequence. Work items are (sequence, head
// group, split of the pages): each item walks its pages once for every KV head of its head group
// (all of the layer's heads unless that would exceed kItemRows query rows), so it streams whole
// page slices in memory order, and scores all query heads of each KV head's GQA group together,
// so a page is read once per step. Each leaves a partial (max, sum, acc) per row that a second
// pass merges per (sequence, KV head), adding the tail's partial and the sinks.
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
// Most query rows one item carries (its accumulators and logits should stay in L1/L2).
constexpr int kItemRows = 32;
// Fewest pages a split may hold: below this its merge costs more than the parallelism gives.
constexpr int64_t kMinSplitPages = 16;

// The most splits per (sequence, KV head) for this many units and threads.
int max_splits(int64_t n_units, int n_threads) {
  const int64_t want = (static_cast<int64_t>(n_threads) * kTasksPerThread + n_units - 1) / n_units;
  return static_cast<int>(std::max<int64_t>(1, want));
}

// KV heads per item for this GQA group size and head count.
int heads_per_item(int n_kv_heads, int group) {
  return std::clamp(kItemRows / group, 1, n_kv_heads);
}

// Shared layout: per sequence, its prepared query rows (all query heads); then per unit
// (sequence, head group), `splits` page states and one tail state, each of `rows` rows.
class SharedLayout {
 public:
  SharedLayout(uint8_t* base, const Geometry& g, int n_q_heads, int64_t n_seqs, int splits,
               int rows)
      : base_(base), g_(g), n_q_heads_(n_q_heads), splits_(splits), rows_(rows) {
    Carver query(nullptr);
    detail::carve_rows(query, g, n_q_heads);
    seq_bytes_ = query.used();
    Carver page(nullptr);
    detail::carve_partial(page, rows, g.acc_floats);
    page_bytes_ = page.used();
    Carver tail(nullptr);
    detail::carve_partial(tail, rows, static_cast<size_t>(g.head_dim_v));
    unit_bytes_ = page_bytes_ * static_cast<size_t>(splits) + tail.used();
    units_at_ = seq_bytes_ * static_cast<size_t>(n_seqs);
  }
  size_t bytes(int64_t n_units) const {
    return units_at_ + unit_bytes_ * static_cast<size_t>(n_units);
  }
  // Sequence seq's query rows.
  detail::RowBuffers queries(int64_t seq) const {
    Carver c(base_ + seq * seq_bytes_);
    return detail::carve_rows(c, g_, n_q_heads_);
  }
  // Split s's page state of a unit; s == splits is its tail state.
  Partial slot(int64_t unit, int s) const {
    Carver c(base_ + units_at_ + unit * unit_bytes_ + page_bytes_ * static_cast<size_t>(s));
    return detail::carve_partial(c, rows_, s < splits_ ? g_.acc_floats : g_.head_dim_v);
  }

 private:
  uint8_t* base_;
  Geometry g_;
  int n_q_heads_;
  int splits_;
  int rows_;
  size_t seq_bytes_ = 0;
  size_t page_bytes_ = 0;
  size_t unit_bytes_ = 0;
  size_t units_at_ = 0;
};

// Units: (sequence, head group), head group u % groups covering heads [hg * per, ...).
struct Units {
  int per;     // KV heads per head group
  int groups;  // head groups per sequence
  Units(int n_kv_heads, int group)
      : per(heads_per_item(n_kv_heads, group)), groups((n_kv_heads + per - 1) / per) {}
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
  Units units;
  int splits;
  SharedLayout shared;
};

// Work item `task`: unit (sequence, head group) and split of its pages; the last split also does
// the tail.
void run_item(const DecodeJob& job, int64_t task, detail::ThreadScratch& s) {
  const int64_t unit = task / job.splits;
  const int split = static_cast<int>(task % job.splits);
  const int64_t seq = unit / job.units.groups;
  const cache::LayerView& view = job.views[seq];
  const int h0 = static_cast<int>(unit % job.units.groups) * job.units.per;
  const int n_heads = std::min(job.units.per, view.n_kv_heads - h0);
  const Partial part = job.shared.slot(unit, split);
  const Partial tail = job.shared.slot(unit, job.splits);
  const int rows = n_heads * job.ctx.group;
  part.reset(rows);
  if (split == job.splits - 1) tail.reset(rows);
  const int g = job.ctx.group;
  const detail::QueryRows qr =
      detail::rows_of(job.shared.queries(seq).from(h0 * g, job.geo), n_heads, g);
  size_t first = 0, last = 0;
  detail::visible_pages(view, qr, &first, &last);
  const detail::SpanArgs args{&view, h0, n_heads, job.ctx.k, job.ctx.v, job.ctx.softcap};
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

// Prepares the query rows of (sequence, KV head) `index` once for every split that reads them.
void prepare_head(const DecodeJob& job, int64_t index) {
  const int n_kv = job.views[0].n_kv_heads;
  const int64_t seq = index / n_kv;
  const int head = static_cast<int>(index % n_kv);
  const cache::LayerView& view = job.views[seq];
  const float* q = job.q + seq * job.n_q_heads * view.head_dim_k;
  detail::load_rows(view, job.ctx, head, 1, q, 1, 0, view.n_tokens() - 1,
                    job.shared.queries(seq).from(head * job.ctx.group, job.geo));
}

// Output rows of (sequence, KV head) `index`, merged from its head group's states.
void merge_head(const DecodeJob& job, int64_t index, detail::ThreadScratch& s) {
  const int n_kv = job.views[0].n_kv_heads;
  const int64_t seq = index / n_kv;
  const int head = static_cast<int>(index % n_kv);
  const cache::LayerView& view = job.views[seq];
  const int64_t unit = seq * job.units.groups + head / job.units.per;
  const int g = job.ctx.group;
  const int row0 = (head % job.units.per) * g;
  Partial* parts = s.parts;
  for (int i = 0; i <= job.splits; ++i) parts[i] = job.shared.slot(unit, i);
  const float* sinks = job.params->sinks ? job.params->sinks + head * g : nullptr;
  float* out = job.out + (seq * job.n_q_heads + static_cast<int64_t>(head) * g) * view.head_dim_v;
  detail::merge_rows(*view.v_codec, head, parts, job.splits, parts[job.splits], row0, g, sinks,
                     s.staging, out);
}

}  // namespace

size_t decode_workspace_bytes(const cache::LayerView& view, int n_q_heads, int n_threads) {
  detail::validate_call(view, 1, n_q_heads, Params{});
  const CallContext ctx(view, n_q_heads, Params{});
  const Geometry geo(view, *ctx.k);
  const Units units(view.n_kv_heads, ctx.group);
  const int splits = max_splits(units.groups, n_threads);
  const int rows = units.per * ctx.group;
  return SharedLayout(nullptr, geo, n_q_heads, 1, splits, rows).bytes(units.groups) +
         thread_bytes(geo, rows, splits) * static_cast<size_t>(n_threads);
}

void decode_batch(std::span<const cache::LayerView> views, const float* q, int n_q_heads,
                  float* out, const Params& params, ThreadPool& pool, Workspace& ws) {
  check_batch(views, n_q_heads, params);
  const CallContext ctx(views[0], n_q_heads, params);
  const Geometry geo(views[0], *ctx.k);
  const Units units(views[0].n_kv_heads, ctx.group);
  const int64_t n_units = static_cast<int64_t>(views.size()) * units.groups;
  const int splits = max_splits(n_units, pool.size());
  const int rows = units.per * ctx.group;
  Workspace::Buffers& buf = ws.buffers();
  const int64_t n_seqs = static_cast<int64_t>(views.size());
  buf.ensure(SharedLayout(nullptr, geo, n_q_heads, n_seqs, splits, rows).bytes(n_units),
             thread_bytes(geo, rows, splits), pool.size());
  const DecodeJob job{
      views,     q,
      n_q_heads, out,
      &params,   ctx,
      geo,       units,
      splits,    SharedLayout(buf.shared.get(), geo, n_q_heads, n_seqs, splits, rows)};
  const int64_t n_heads = n_seqs * views[0].n_kv_heads;
  pool.parallel_for(n_heads, [&](int64_t index, int) { prepare_head(job, index); });
  auto scratch = [&](int thread) {
    Carver c(buf.per_thread[static_cast<size_t>(thread)].get());
    return detail::carve_thread(c, geo, rows, splits + 1);
  };
  pool.parallel_for(n_units * splits, [&](int64_t task, int thread) {
    detail::ThreadScratch s = scratch(thread);
    run_item(job, task, s);
  });
  pool.parallel_for(n_heads, [&](int64_t index, int thread) {
    detail::ThreadScratch s = scratch(thread);
    merge_head(job, index, s);
  });
}

void decode(const cache::LayerView& view, const float* q, int n_q_heads, float* out,
            const Params& params, ThreadPool& pool, Workspace& ws) {
  decode_batch(std::span<const cache::LayerView>(&view, 1), q, n_q_heads, out, params, pool, ws);
}

}  // namespace kvpack::attention
