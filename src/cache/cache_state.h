// The cache's internal state, shared by the files that implement kvpack::cache::Cache:
// cache.cpp (sequences, allocation, prefix reuse), append.cpp (staging, encoding, views),
// compaction.cpp and residency.cpp.
//
// Locks (see docs/cache.md):
//   world       shared by every call, exclusive for compact() and shrink(), which move pages
//               and rewrite every page table.
//   pool_mutex  guards the PagePool, page_group, every Sequence's `tokens`, `keys` and page
//               tables (`groups`, and an open step's spares) and `staging` pointer, the
//               sequence slots and the counters without std::atomic.
//               Per-layer cursors and staged rows belong to the sequence's single writer.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <utility>
#include <vector>

#include "base/aligned.h"
#include "cache/arena.h"
#include "cache/page_pool.h"
#include "kvpack/cache.h"

namespace kvpack::cache {

// f32 rows of tokens not encoded yet, for every layer. Shared by a fork's parent and child
// until either writes (add_tokens or truncate copies it then). Its holders are the
// shared_ptr's use count, changed (and read) only under pool_mutex.
struct Staging {
  explicit Staging(size_t floats);
  // Per layer: K [n_kv_heads][tail_cap][head_dim_k], then V [n_kv_heads][tail_cap][head_dim_v].
  AlignedArray<float> data;
};

// Where one layer of a sequence stands. Tokens [encoded * page_tokens, n) sit in staging rows
// [start, start + tail) with tail = n - encoded * page_tokens.
struct LayerCursor {
  int64_t n = 0;         // tokens appended at this layer
  uint32_t encoded = 0;  // leading pages encoded at this layer
  int32_t start = 0;     // staging row of the first unencoded token
  // Where this layer's latest append began: a chunked step's caller has attended every query
  // before it (Cache::begin_step), so pages behind their windows can be recycled.
  int64_t attend_from = 0;
};

// One page group's page table of a sequence.
struct GroupTable {
  // [ceil(n_tokens / page_tokens)] page ids in token order. kNoPage marks a page released behind
  // a sliding window (every entry before `first`) and, inside a chunked step, a page of the step
  // recycled or not taken yet.
  std::vector<uint32_t> pages;
  size_t first = 0;       // entries before it are released
  size_t registered = 0;  // pages [0, registered) were offered to the prefix index
};

// What rollback_step needs of one group.
struct GroupUndo {
  size_t n_pages = 0;  // table entries before the step
  // Table entries add_tokens gave a private page: (index, the shared or hashed page they held).
  // This record holds those pages' references until the step ends.
  std::vector<std::pair<size_t, uint32_t>> displaced;
  // A chunked step's ring (sliding groups): the step's entries [n_pages, taken) have had a page
  // ([n_pages, ring_from) recycled since, now kNoPage); `spares` are its pages not in the table.
  bool ring = false;
  size_t ring_from = 0;
  size_t taken = 0;
  std::vector<uint32_t> spares;
};

// What rollback_step needs to return a sequence exactly to where its open step began (step.cpp).
// The step's own changes need no record: its pages are the tables' entries from n_pages on, and
// the pages it completes are hashed only at commit_step. What the step replaced or may
// overwrite is kept here until the step ends.
struct StepUndo {
  size_t n_tokens = 0;              // tokens before the step
  int chunk = 0;                    // begin_step's chunk (0: none)
  std::vector<LayerCursor> layers;  // [n_layers] cursors before the step
  std::vector<GroupUndo> groups;    // [groups]
  // The shared staging add_tokens replaced with a private copy (its rows stay untouched there).
  std::shared_ptr<Staging> displaced_staging;
  // Otherwise, the unencoded rows of every layer as the step began, [layer][K|V][head][tail][dim],
  // when the step's appends can wrap past the staging's end and overwrite them; else empty.
  std::vector<float> tail_rows;
};

struct Sequence {
  uint64_t salt = 0;
  std::vector<int32_t> tokens;      // [n_tokens] ids added so far
  std::vector<uint64_t> keys;       // chained page keys of the first complete pages
  std::vector<GroupTable> groups;   // [groups]
  std::vector<LayerCursor> layers;  // [n_layers]
  std::shared_ptr<Staging> staging;
  std::unique_ptr<StepUndo> step;  // between begin_step and commit_step / rollback_step

  // No step is open and every layer has appended every token added (the state fork, truncate
  // and begin_step need).
  bool between_steps() const;
};

// A released page truncate takes back from the prefix index: group, table index, page.
struct Reacquire {
  size_t group = 0;
  size_t index = 0;
  uint32_t page = 0;
};

struct Cache::State {
  explicit State(const CacheConfig& config);

  CacheConfig config;
  PageLayout layout;
  int tail_cap = 0;           // staging rows per head and layer: page_tokens, or 2W + page_tokens
  size_t staging_floats = 0;  // one Staging's data
  uint64_t salt = 0;
  std::vector<std::unique_ptr<format::Codec>> k_codecs;  // [n_layers]
  std::vector<std::unique_ptr<format::Codec>> v_codecs;  // [n_layers]
  std::unique_ptr<Arena> arena;                          // one K and one V pool per slot

  mutable std::shared_mutex world;
  mutable std::mutex pool_mutex;
  std::unique_ptr<PagePool> pool;
  std::vector<uint16_t> page_group;             // [n_pages] group of each used or cached page
  std::vector<std::unique_ptr<Sequence>> seqs;  // [max_sequences], null when the slot is free
  std::vector<SeqId> free_slots;                // stack; lowest id on top

  CacheCounters counters;  // fields below guarded by pool_mutex; the hot ones live here:
  std::atomic<uint64_t> appended_tokens{0};
  std::atomic<uint64_t> append_ns{0};
  std::atomic<uint64_t> encoded_pages{0};
  std::atomic<uint64_t> encode_ns{0};

  int page_tokens() const { return config.page_tokens; }
  size_t n_groups() const { return layout.groups.size(); }
  bool sliding(size_t g) const { return layout.groups[g].window > 0; }
  // Layer l's group and its table in q.
  size_t group_of(int layer) const { return static_cast<size_t>(layout.layer_group[layer]); }
  // The pages every layer of group g has encoded, and lo(n): the first page it must hold between
  // steps (the window of the first query not yet appended at every layer, and encoding).
  uint32_t group_encoded(const Sequence& q, size_t g) const;
  size_t first_needed(const Sequence& q, size_t g) const;
  uint8_t* k_slice(int layer, uint32_t page) const;
  uint8_t* v_slice(int layer, uint32_t page) const;

  // The live sequence `id`; throws Error for an id no sequence has.
  Sequence& seq(SeqId id) const;
  // New Sequence with its own staging (heap allocation only; no lock needed).
  std::unique_ptr<Sequence> new_sequence(uint64_t seq_salt) const;
  // Takes a free slot for seq; throws Error when all max_sequences are live. pool_mutex held.
  SeqId insert(std::unique_ptr<Sequence> seq);
  // Drops one holder of each page of q's group-g table from index `from` on (last page first,
  // so a sequence's end is evicted before its start) and shortens the table. pool_mutex held.
  void release_pages(Sequence& q, size_t g, size_t from);
  // release_pages for every group.
  void release_all(Sequence& q, size_t from);
  // Releases q's group-g pages before index `to` (behind the window). pool_mutex held.
  void release_front(Sequence& q, size_t g, size_t to);
  // Pages release_front(q, g, first_needed) would return to the pool (held by q alone).
  uint32_t releasable(const Sequence& q, size_t g) const;

  float* k_stage(Staging& st, int layer) const;
  float* v_stage(Staging& st, int layer) const;
  // Calls fn(offset, floats) for the unencoded rows of every layer, role and head of a staging
  // laid out for `layers`, in [layer][K|V][head] order; offset counts floats from its start.
  template <typename F>
  void for_each_tail_run(const std::vector<LayerCursor>& layers, F&& fn) const;
  // A private copy of q's staging holding its unencoded rows (heap allocation only).
  std::unique_ptr<Staging> clone_staging(const Sequence& q) const;
  // Extends q by `tokens`, taking the pages they need and un-sharing q's filling pages and
  // staging (add_tokens and begin_step). With `undo`, fills it and keeps in it what the step
  // replaces instead of releasing it; without, first releases what sliding groups no longer
  // need. All or nothing; pool_mutex held.
  void extend(Sequence& q, std::span<const int32_t> tokens, StepUndo* undo, int chunk);
  // Copies q's unencoded rows into undo.tail_rows when appending n_tokens more can overwrite
  // them (step.cpp).
  void keep_tail_rows(const Sequence& q, size_t n_tokens, StepUndo& undo) const;
  // The released pages sliding groups need back when q is cut to `keep` tokens with `encoded`
  // pages encoded (the window of the token at `keep`), found in the prefix index; throws Error
  // naming the first that is gone. pool_mutex held.
  std::vector<Reacquire> reacquire(const Sequence& q, int64_t keep, int64_t encoded) const;
  // Puts those pages back into q's tables (one more holder each). pool_mutex held.
  void take_back(Sequence& q, const std::vector<Reacquire>& back);
  // Decodes tokens [0, n) of page index p of q at every layer into staging rows [0, n).
  void decode_into_staging(Sequence& q, Staging& st, size_t p, int n) const;
  // Encodes page q.layers[layer].encoded of one layer from staging rows [start, start + P)
  // (ks, vs: that layer's K and V staging) and advances the cursor's `encoded`.
  void encode_page(Sequence& q, int layer, const float* ks, const float* vs);
  // Registers q's pages that every layer of their group has encoded in the prefix index.
  // pool_mutex held.
  void register_complete_pages(Sequence& q);
  // A chunked step's ring (step.cpp), for an append at `layer` that starts at token
  // `attend_from` (the layer's queries before it are done): gives group g's table a page for
  // every entry before `end`, recycling the step's own pages that are behind every layer's
  // window and encoded by every layer, and sets the layer's attend_from. Throws (changing
  // nothing) when they cannot cover the entries. pool_mutex held.
  void ring_take(Sequence& q, size_t g, size_t end, int layer, int64_t attend_from);
  // Moves the step's own pages of group g before `dead` into the ring's spares.
  void ring_recycle(Sequence& q, size_t g, size_t dead);
};

template <typename F>
void Cache::State::for_each_tail_run(const std::vector<LayerCursor>& layers, F&& fn) const {
  const size_t H = static_cast<size_t>(config.n_kv_heads), C = static_cast<size_t>(tail_cap);
  const size_t dk = static_cast<size_t>(config.head_dim_k);
  const size_t dv = static_cast<size_t>(config.head_dim_v);
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerCursor& c = layers[l];
    const auto tail = static_cast<size_t>(c.n - static_cast<int64_t>(c.encoded) * page_tokens());
    if (tail == 0) continue;
    const size_t k_base = l * H * C * (dk + dv), v_base = k_base + H * C * dk;
    for (size_t h = 0; h < H; ++h) fn(k_base + (h * C + c.start) * dk, tail * dk);
    for (size_t h = 0; h < H; ++h) fn(v_base + (h * C + c.start) * dv, tail * dv);
  }
}

}  // namespace kvpack::cache
