// Internal: shared-prefix decode. Sequences of one decode_batch whose page tables begin with the
// same page ids (a shared system prompt or document: refcounted pages of the paged cache) form a
// run; the run's pages are read once per step by work items that stack the query rows of several
// of its sequences, and each sequence's own items read only the pages after the run. The states
// meet in decode's merge (log-sum-exp), as KV splits do.
//
//   sequence a: [p0 p1 p2 p3 | a4 a5] tail      shared items: rows of a, b, c x pages p0..p3
//   sequence b: [p0 p1 p2 p3 | b4]    tail      own items:    a x a4 a5, b x b4, c x c4..c6
//   sequence c: [p0 p1 p2 p3 | c4 c5 c6] tail   then per sequence: merge(shared, own, tail)
//
// The plan is rebuilt per call (page tables change every step) into reused vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvpack/cache.h"

namespace kvpack::attention::detail {

// Most query rows one shared item stacks (sequences x GQA group x KV heads): enough that a
// 16-session run of a GQA-4 model reads each page once per KV head, few enough that the item's
// logits ([rows][128-token chunk], 64 KiB) and accumulators stay in L2.
inline constexpr int kSharedItemRows = 128;

// One shared work unit: sequences members[member0 .. member0 + n_seqs) of a run against the
// run's pages, for KV heads [h0, h0 + n_heads). Its rows are head-major, then sequence, then
// GQA group: row (h * n_seqs + s) * group + g.
struct SharedUnit {
  size_t pages = 0;  // the run's length: page_ids[0, pages) of every member
  int member0 = 0;
  int n_seqs = 0;
  int h0 = 0;
  int n_heads = 0;
};

// How one sequence takes part.
struct SeqShare {
  size_t own_begin = 0;  // the first page its own items read (0 unless in a run)
  int64_t unit0 = -1;    // the shared unit holding its KV heads [0, heads_per); -1: none
  int slot = 0;          // its index among that unit's sequences
  int unit_seqs = 0;     // that unit's n_seqs
  int heads_per = 0;     // KV heads per unit of its chunk (units unit0, unit0 + 1, ... follow)

  // The unit and first row of KV head `head`'s group-rows in it.
  int64_t unit_of(int head) const { return unit0 + head / heads_per; }
  int row_of(int head, int group) const { return ((head % heads_per) * unit_seqs + slot) * group; }
};

struct PrefixPlan {
  std::vector<int64_t> members;  // sequence indices, grouped by run
  std::vector<SharedUnit> units;
  std::vector<SeqShare> seqs;  // [n_seqs]
  int max_rows = 0;            // most rows of any unit (0 without units)

  // Finds the runs of `views` (sequences with the same first_page and first page id, sharing
  // page_ids up to their longest common prefix) and cuts them into units of at most
  // kSharedItemRows rows. share == false (or no run) leaves every sequence on its own.
  void build(std::span<const cache::LayerView> views, int group, bool share);
};

}  // namespace kvpack::attention::detail
