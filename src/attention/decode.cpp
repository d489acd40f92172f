// Split-KV decode (flash-decoding): one query token per sequence. Work items are (sequence, head
// group, split of the pages): each item walks its pages once for every KV head of its head group
// (all of the layer's heads unless that would exceed kItemRows query rows), so it streams whole
// page slices in memory order, and scores all query heads of each KV head's GQA group together,
// so a page is read once per step. Sequences that begin with the same pages (prefix_plan.h) read
// those in shared items instead, (shared unit, split) of a run's pages with the query rows of
// several sequences stacked, and their own items start after the run. Each item leaves a partial
// (max, sum, acc) per row that a second pass merges per (sequence, KV head), adding the tail's
// partial and the sinks.
#include <algorithm>
#include <atomic>

#include "attention/call.h"
#include "attention/merge.h"
#include "attention/prefix_plan.h"
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
// (sequence, head group), `splits` page states and one tail state, each of `rows` rows; then per
// shared unit (prefix_plan.h), its stacked query rows and `splits` page states of `shared_rows`.
class SharedLayout {
 public:
  SharedLayout(uint8_t* base, const Geometry& g, int n_q_heads, int64_t n_seqs, int splits,
               int rows, int64_t n_units = 0, int shared_rows = 0)
      : base_(base),
        g_(g),
        n_q_heads_(n_q_heads),
        splits_(splits),
        rows_(rows),
        shared_rows_(shared_rows) {
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
    shared_at_ = units_at_ + unit_bytes_ * static_cast<size_t>(n_units);
    Carver stacked(nullptr);
    detail::carve_rows(stacked, g, shared_rows);
    stacked_bytes_ = stacked.used();
    Carver shared_page(nullptr);
    detail::carve_partial(shared_page, shared_rows, g.acc_floats);
    shared_page_bytes_ = shared_page.used();
    shared_unit_bytes_ = stacked_bytes_ + shared_page_bytes_ * static_cast<size_t>(splits);
  }
  size_t bytes(int64_t n_shared_units) const {
    return shared_at_ + shared_unit_bytes_ * static_cast<size_t>(n_shared_units);
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
  // A shared unit's stacked query rows.
  detail::RowBuffers stacked(int64_t unit) const {
    Carver c(shared(unit));
    return detail::carve_rows(c, g_, shared_rows_);
  }
  // Split s's page state of a shared unit.
  Partial shared_slot(int64_t unit, int s) const {
    Carver c(shared(unit) + stacked_bytes_ + shared_page_bytes_ * static_cast<size_t>(s));
    return detail::carve_partial(c, shared_rows_, g_.acc_floats);
  }

 private:
  uint8_t* shared(int64_t unit) const {
    return base_ + shared_at_ + static_cast<size_t>(unit) * shared_unit_bytes_;
  }

  uint8_t* base_;
  Geometry g_;
  int n_q_heads_;
  int splits_;
  int rows_;
  int shared_rows_;
  size_t seq_bytes_ = 0;
  size_t page_bytes_ = 0;
  size_t unit_bytes_ = 0;
  size_t units_at_ = 0;
  size_t shared_at_ = 0;
  size_t stacked_bytes_ = 0;
  size_t shared_page_bytes_ = 0;
  size_t shared_unit_bytes_ = 0;
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
  const detail::PrefixPlan* plan;
  std::atomic<uint64_t>* blocks_read;  // (page, KV head) blocks the items read
};

// The pages [first, last) that split `split` of `splits` reads of a range (a sequence's splits
// beyond what its length supports stay empty).
bool split_range(int split, int splits, size_t* first, size_t* last) {
  const auto span = static_cast<int64_t>(*last - *first);
  const int used = static_cast<int>(std::clamp<int64_t>(span / kMinSplitPages, 1, splits));
  if (split >= used) return false;
  const size_t b = *first + static_cast<size_t>(span * split / used);
  *last = *first + static_cast<size_t>(span * (split + 1) / used);
  *first = b;
  return true;
}

// Work item `task`: unit (sequence, head group) and split of its own pages (those after its
// shared run); the last split also does the tail.
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
  first = std::min(std::max(first, job.plan->seqs[static_cast<size_t>(seq)].own_begin), last);
  const detail::SpanArgs args{&view, h0, n_heads, job.ctx.k, job.ctx.v, job.ctx.softcap};
  if (split_range(split, job.splits, &first, &last)) {
    const size_t pages = detail::attend_pages(args, qr, first, last, s.span, part);
    job.blocks_read->fetch_add(pages * static_cast<size_t>(n_heads), std::memory_order_relaxed);
  }
  if (split == job.splits - 1) detail::attend_tail(args, qr, s.span, tail);
}

// Work item `task` of the shared units: unit and split of its run's pages, all the unit's
// sequences' rows at once.
void run_shared_item(const DecodeJob& job, int64_t task, detail::ThreadScratch& s) {
  const int64_t index = task / job.splits;
  const int split = static_cast<int>(task % job.splits);
  const detail::SharedUnit& unit = job.plan->units[static_cast<size_t>(index)];
  const int per_head = unit.n_seqs * job.ctx.group;
  const Partial part = job.shared.shared_slot(index, split);
  part.reset(unit.n_heads * per_head);
  const detail::QueryRows qr = detail::rows_of(job.shared.stacked(index), unit.n_heads, per_head);
  // Every member holds the run's page ids: the first one's view reads them for all.
  const cache::LayerView& view = job.views[job.plan->members[static_cast<size_t>(unit.member0)]];
  size_t first = 0, last = 0;
  detail::visible_pages(view, qr, &first, &last);
  last = std::min(last, unit.pages);
  first = std::min(first, last);
  const detail::SpanArgs args{&view, unit.h0, unit.n_heads, job.ctx.k, job.ctx.v, job.ctx.softcap};
  if (split_range(split, job.splits, &first, &last)) {
    const size_t pages = detail::attend_pages(args, qr, first, last, s.span, part);
    job.blocks_read->fetch_add(pages * static_cast<size_t>(unit.n_heads),
                               std::memory_order_relaxed);
  }
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

// Copies the prepared rows of a shared unit's sequences into its stacked layout.
void stack_unit(const DecodeJob& job, int64_t index) {
  const detail::SharedUnit& unit = job.plan->units[static_cast<size_t>(index)];
  const int g = job.ctx.group;
  const detail::RowBuffers dst = job.shared.stacked(index);
  for (int h = 0; h < unit.n_heads; ++h) {
    for (int i = 0; i < unit.n_seqs; ++i) {
      const int64_t seq = job.plan->members[static_cast<size_t>(unit.member0 + i)];
      const detail::RowBuffers from = job.shared.queries(seq).from((unit.h0 + h) * g, job.geo);
      const detail::RowBuffers to = dst.from((h * unit.n_seqs + i) * g, job.geo);
      std::copy_n(from.prepared, static_cast<size_t>(g) * job.geo.query_bytes, to.prepared);
      std::copy_n(from.lo, g, to.lo);
      std::copy_n(from.hi, g, to.hi);
    }
  }
}

// The state of rows row .. of p, as a state whose row 0 is `row`.
Partial rows_from(const Partial& p, int row) {
  return {p.m + row, p.l + row, p.acc + static_cast<size_t>(row) * p.acc_floats, p.acc_floats};
}

// Output rows of (sequence, KV head) `index`, merged from its head group's states and, in a
// run, its shared unit's.
void merge_head(const DecodeJob& job, int64_t index, detail::ThreadScratch& s) {
  const int n_kv = job.views[0].n_kv_heads;
  const int64_t seq = index / n_kv;
  const int head = static_cast<int>(index % n_kv);
  const cache::LayerView& view = job.views[seq];
  const int64_t unit = seq * job.units.groups + head / job.units.per;
  const int g = job.ctx.group;
  const int row0 = (head % job.units.per) * g;
  Partial* parts = s.parts;
  int n_parts = 0;
  for (int i = 0; i < job.splits; ++i) parts[n_parts++] = rows_from(job.shared.slot(unit, i), row0);
  const detail::SeqShare& share = job.plan->seqs[static_cast<size_t>(seq)];
  if (share.unit0 >= 0) {
    const int64_t shared_unit = share.unit_of(head);
    const int row = share.row_of(head, g);
    for (int i = 0; i < job.splits; ++i) {
      parts[n_parts++] = rows_from(job.shared.shared_slot(shared_unit, i), row);
    }
  }
  const Partial tail = rows_from(job.shared.slot(unit, job.splits), row0);
  const float* sinks = job.params->sinks ? job.params->sinks + head * g : nullptr;
  float* out = job.out + (seq * job.n_q_heads + static_cast<int64_t>(head) * g) * view.head_dim_v;
  detail::merge_rows(*view.v_codec, head, parts, n_parts, tail, 0, g, sinks, s.staging, out);
}

}  // namespace

size_t decode_workspace_bytes(const cache::LayerView& view, int n_q_heads, int n_threads) {
  detail::validate_call(view, 1, n_q_heads, Params{});
  const CallContext ctx(view, n_q_heads, Params{});
  const Geometry geo(view, *ctx.k);
  const Units units(view.n_kv_heads, ctx.group);
  const int splits = max_splits(units.groups, n_threads);
  const int rows = units.per * ctx.group;
  // One sequence shares nothing; its merges are sized for own and shared splits all the same.
  return SharedLayout(nullptr, geo, n_q_heads, 1, splits, rows, units.groups).bytes(0) +
         thread_bytes(geo, rows, 2 * splits) * static_cast<size_t>(n_threads);
}

void decode_batch(std::span<const cache::LayerView> views, const float* q, int n_q_heads,
                  float* out, const Params& params, ThreadPool& pool, Workspace& ws,
                  DecodeStats* stats) {
  check_batch(views, n_q_heads, params);
  const CallContext ctx(views[0], n_q_heads, params);
  const Geometry geo(views[0], *ctx.k);
  const Units units(views[0].n_kv_heads, ctx.group);
  const int64_t n_units = static_cast<int64_t>(views.size()) * units.groups;
  Workspace::Buffers& buf = ws.buffers();
  detail::PrefixPlan& plan = buf.prefix;
  plan.build(views, ctx.group, params.share_prefixes);
  const auto n_shared = static_cast<int64_t>(plan.units.size());
  const int splits = max_splits(n_units + n_shared, pool.size());
  const int rows = units.per * ctx.group;
  const int item_rows = std::max(rows, plan.max_rows);
  const int64_t n_seqs = static_cast<int64_t>(views.size());
  const SharedLayout measure(nullptr, geo, n_q_heads, n_seqs, splits, rows, n_units, plan.max_rows);
  // Merges combine the own splits, the shared splits and the tail.
  buf.ensure(measure.bytes(n_shared), thread_bytes(geo, item_rows, 2 * splits), pool.size());
  std::atomic<uint64_t> blocks_read{0};
  const DecodeJob job{
      views,
      q,
      n_q_heads,
      out,
      &params,
      ctx,
      geo,
      units,
      splits,
      SharedLayout(buf.shared.get(), geo, n_q_heads, n_seqs, splits, rows, n_units, plan.max_rows),
      &plan,
      &blocks_read};
  const int64_t n_heads = n_seqs * views[0].n_kv_heads;
  pool.parallel_for(n_heads, [&](int64_t index, int) { prepare_head(job, index); });
  if (n_shared > 0) pool.parallel_for(n_shared, [&](int64_t u, int) { stack_unit(job, u); });
  auto scratch = [&](int thread) {
    Carver c(buf.per_thread[static_cast<size_t>(thread)].get());
    return detail::carve_thread(c, geo, item_rows, 2 * splits + 1);
  };
  // Shared items first: they are the longest, and claiming is dynamic.
  const int64_t shared_tasks = n_shared * splits;
  pool.parallel_for(shared_tasks + n_units * splits, [&](int64_t task, int thread) {
    detail::ThreadScratch s = scratch(thread);
    if (task < shared_tasks) {
      run_shared_item(job, task, s);
    } else {
      run_item(job, task - shared_tasks, s);
    }
  });
  pool.parallel_for(n_heads, [&](int64_t index, int thread) {
    detail::ThreadScratch s = scratch(thread);
    merge_head(job, index, s);
  });
  if (stats != nullptr) {
    const uint64_t blocks = blocks_read.load();
    stats->page_blocks = blocks;
    stats->bytes = blocks * (views[0].k_codec->head_bytes() + views[0].v_codec->head_bytes());
  }
}

void decode(const cache::LayerView& view, const float* q, int n_q_heads, float* out,
            const Params& params, ThreadPool& pool, Workspace& ws) {
  decode_batch(std::span<const cache::LayerView>(&view, 1), q, n_q_heads, out, params, pool, ws);
}

}  // namespace kvpack::attention
