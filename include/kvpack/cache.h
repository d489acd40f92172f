// The paged KV cache (src/cache): the read-only view attention consumes, and the cache that
// builds views: arena, page tables, prefix index, eviction, compaction, residency report.
// docs/cache.md describes the design, its invariants and the thread model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpack/format.h"

namespace kvpack::cache {

// One sequence at one layer, as attention reads it: the encoded full pages in token order, then
// the unencoded tail (the partly filled last page plus any high-precision window), f32.
//
//   tokens: [ released | page_ids[0] | ... | page_ids[P-1] | tail (tail_tokens) ]
//            <- first_page * page_tokens -><----- encoded ------> <-- f32, as appended -->
//
// A sliding-window layer's cache releases pages wholly behind its window: first_page counts the
// pages before page_ids[0] that the view no longer holds, so page_ids[i] holds tokens from
// (first_page + i) * page_tokens on. Positions stay absolute: n_tokens() counts every token of
// the sequence, released ones included.
//
// Page p's K slice starts at k_pages + page_ids[p] * k_page_stride and holds n_kv_heads blocks
// of k_codec->head_bytes(), head h at offset h * head_bytes(); V likewise.
struct LayerView {
  const format::Codec* k_codec = nullptr;
  const format::Codec* v_codec = nullptr;
  const uint8_t* k_pages = nullptr;
  const uint8_t* v_pages = nullptr;
  size_t k_page_stride = 0;  // bytes between consecutive page ids in this layer's K pool
  size_t v_page_stride = 0;
  std::span<const uint32_t> page_ids;
  size_t first_page = 0;  // pages released before page_ids[0] (0 unless the layer slides)

  // Tail token t of head h: K at k_tail + (h * tail_head_stride + t) * head_dim_k, V likewise
  // with head_dim_v. tail_head_stride is in tokens (the tail's capacity per head).
  const float* k_tail = nullptr;
  const float* v_tail = nullptr;
  int tail_tokens = 0;
  size_t tail_head_stride = 0;

  int n_kv_heads = 0;
  int head_dim_k = 0;
  int head_dim_v = 0;
  int page_tokens = 0;

  // The first token the view holds (earlier ones were released).
  int64_t first_token() const { return static_cast<int64_t>(first_page) * page_tokens; }
  // One past the last encoded token (absolute).
  int64_t encoded_tokens() const {
    return static_cast<int64_t>(first_page + page_ids.size()) * page_tokens;
  }
  int64_t n_tokens() const { return encoded_tokens() + tail_tokens; }
  const uint8_t* k_block(size_t page, int head) const {
    return k_pages + page_ids[page] * k_page_stride + head * k_codec->head_bytes();
  }
  const uint8_t* v_block(size_t page, int head) const {
    return v_pages + page_ids[page] * v_page_stride + head * v_codec->head_bytes();
  }
  const float* k_tail_row(int head, int t) const {
    return k_tail + (head * tail_head_stride + static_cast<size_t>(t)) * head_dim_k;
  }
  const float* v_tail_row(int head, int t) const {
    return v_tail + (head * tail_head_stride + static_cast<size_t>(t)) * head_dim_v;
  }
};

// ---- the cache ----

// Prefill tokens per pass through the layers that a step's page arithmetic assumes by default
// (model::ForwardOptions::max_chunk's default; see Cache::begin_step).
inline constexpr int kDefaultStepChunk = 256;

// What a cache is built for: the model's KV geometry, the K/V policy, the budget and the salt
// that keeps pages of different models or settings from ever being shared.
struct CacheConfig {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim_k = 128;
  int head_dim_v = 128;
  int page_tokens = 32;  // 16..256
  format::KVPolicy policy;
  // Each layer's attention window in tokens, [n_layers]: 0 = full attention (every earlier
  // token), W > 0 = a query sees itself and the W - 1 tokens before it (attention::Params::window),
  // so the cache keeps only the pages such a query can still read. Empty: every layer is full.
  // Layers are grouped by window, each group with its own page tables (see PageLayout).
  std::vector<int> layer_window;
  // The arena: exactly one of the two. budget_bytes holds floor(budget / page bytes) pages, where
  // page bytes = PageLayout::page_bytes (one page of any group: page_tokens tokens of the group's
  // layers, K and V, in their formats). sequence_pages() sizes one sequence.
  uint64_t budget_bytes = 0;
  uint32_t n_pages = 0;
  // Tokens that stay unencoded (f32) behind the newest one, KIVI's residual window. 0: only the
  // partly filled last page stays unencoded.
  int hp_window = 0;
  // Identifies the producer of K/V: model name and RoPE settings (theta, scaling), e.g.
  // "Llama-3.1-8B rope_theta=500000 rope_scaling=llama3:8". Hashed into every page key together
  // with the per-layer formats, windows and the geometry.
  std::string salt;
  uint64_t model_seed = 0;  // seeds the codecs' rotations and sketches (format::layer_seed)
  int max_sequences = 4096;
};

// ---- page arithmetic (shared by the cache and the planner) ----

// One layer as the page arithmetic sees it.
struct LayerPages {
  uint64_t k_bytes = 0;  // one page slice of K: KV heads x the K format's head bytes per page
  uint64_t v_bytes = 0;
  int window = 0;                  // 0: full attention
  uint64_t staging_row_bytes = 0;  // f32 K and V of one token: KV heads x (dk + dv) x 4
  bool holds_kv() const { return k_bytes + v_bytes > 0; }
};

// Layers of one attention kind that share page tables. Every group has the same number of slots
// (layer places in a page), so one page serves any group.
struct PageGroup {
  int window = 0;           // 0: full attention
  std::vector<int> layers;  // in slot order (slot i holds layers[i]); may leave slots empty
  // Sliding groups: held_upto[n] = the most pages held between steps at any length <= n, up to
  // the length where held_pages turns periodic (period page_tokens); max_held is its last entry,
  // the most at any length.
  std::vector<uint64_t> held_upto;
  uint64_t max_held = 0;
};

// How a cache lays out its layers, and what a sequence costs. Groups are formed per attention
// kind: with G = the fewest layers any kind has, each kind's layers (in layer order) are cut into
// groups of G, the last one shorter. All groups have G slots; slot s's K (V) slice is the largest
// K (V) slice of the layers any group puts in slot s (each group orders its layers by slice size,
// largest first, so mixed formats pad little). A page is one slice per slot: page_bytes.
//
// A full group holds every page of a sequence, ceil(n / P). A sliding group of window W holds, at
// a sequence of n tokens between steps, the pages from lo(n) = min(D(n), E(n)) on, where D(n) =
// floor((n - W + 1) / P) is the first page the next query reads and E(n) the pages every layer
// of the group has encoded (floor((n - hp_window) / P)); both 0 below zero. A step keeps those
// and takes its new pages; a step longer than its chunk m recycles its own pages behind the
// window in a ring of ring_pages(m) pages (docs/cache.md).
struct PageLayout {
  int page_tokens = 0;
  int hp_window = 0;
  std::vector<PageGroup> groups;
  std::vector<int> layer_group;  // [layers]: its group, -1 for a layer without K/V
  std::vector<int> layer_slot;   // [layers]: its slot, -1 for a layer without K/V
  std::vector<uint64_t> k_slot_bytes, v_slot_bytes;    // [slots]
  std::vector<uint64_t> layer_k_bytes, layer_v_bytes;  // [layers]: each layer's own slices
  uint64_t page_bytes = 0;                             // sum of the slot slices, K and V
  uint64_t staging_bytes = 0;  // one sequence's f32 tail rows (outside the arena)

  int slots() const { return static_cast<int>(k_slot_bytes.size()); }
  // D(n): the first page the next query (position n) of group g reads; 0 for a full group.
  int64_t window_start(size_t g, int64_t n) const;
  // E(n): the pages every layer has encoded once n tokens are appended.
  int64_t encoded_pages(int64_t n) const;
  // lo(n) = min(D(n), E(n)): the first page group g holds between steps at n tokens.
  int64_t first_held(size_t g, int64_t n) const;
  // Bytes of the layers' own slices in one page of group g (page_bytes minus the padding).
  uint64_t group_slice_bytes(size_t g) const;
  // Pages group g holds for a sequence of n tokens between steps.
  uint64_t held_pages(size_t g, int64_t n) const;
  // Pages a step of group g from n0 to n1 tokens holds at its peak, appending up to `chunk`
  // tokens at a time (0: any number; then a sliding group keeps every page of the step).
  uint64_t step_pages(size_t g, int64_t n0, int64_t n1, int chunk) const;
  // The most pages a step of a sliding group takes for itself, appending chunks of `chunk`.
  uint64_t ring_pages(size_t g, int chunk) const;
  // The most pages group g holds while one sequence grows to n tokens by steps of chunks of up to
  // `chunk` tokens, in the worst order (a long step starting where the group holds most).
  uint64_t peak_pages(size_t g, int64_t n, int chunk) const;
  // peak_pages summed over the groups: the pages one sequence of n tokens needs.
  uint64_t sequence_pages(int64_t n, int chunk = kDefaultStepChunk) const;
  // sequence_pages x page_bytes + staging_bytes.
  uint64_t sequence_bytes(int64_t n, int chunk = kDefaultStepChunk) const;
  // The longest whole-page sequence whose sequence_bytes fit in `bytes`; -1 when every group
  // slides (any length fits once one does), 0 when not even an empty sequence fits.
  int64_t max_tokens(uint64_t bytes, int chunk = kDefaultStepChunk) const;
};

// The layout of these layers. Throws Error for an empty list or a negative window.
PageLayout page_layout(std::span<const LayerPages> layers, int page_tokens, int hp_window);
// The layout a cache of this configuration uses (its formats' slice sizes from the registry).
// Throws Error like Cache's constructor for a configuration it would refuse.
PageLayout page_layout(const CacheConfig& config);
// Pages a cache needs so that one sequence can grow to `tokens` tokens in steps of chunks of up
// to `chunk` tokens (Model::cache_config's n_pages).
uint32_t sequence_pages(const CacheConfig& config, int64_t tokens, int chunk = kDefaultStepChunk);

// Identifies a sequence in one cache; valid from create()/fork() until free().
using SeqId = uint32_t;

// A page table entry for a page the sequence does not hold (released behind a sliding window).
inline constexpr uint32_t kNoPage = UINT32_MAX;

// A count of pages and the arena bytes they occupy.
struct PageBytes {
  uint64_t pages = 0;
  uint64_t bytes = 0;
};

// Monotonic counters since the cache was built.
struct CacheCounters {
  uint64_t prefix_hit_tokens = 0;   // tokens attach_prefix() found cached
  uint64_t prefix_miss_tokens = 0;  // tokens it was asked for and did not find
  uint64_t evictions = 0;           // cached pages reused for new data
  uint64_t compactions = 0;
  uint64_t pages_moved = 0;      // by compaction
  uint64_t copy_on_writes = 0;   // shared tails (pages or staged tokens) copied before a write
  uint64_t bytes_released = 0;   // returned to the OS by shrink()
  uint64_t appended_tokens = 0;  // token rows appended, summed over layers
  uint64_t append_ns = 0;        // time inside append(), including encoding
  uint64_t encoded_pages = 0;    // page slices encoded, summed over layers
  uint64_t encode_ns = 0;        // time encoding them
};

// One page group's part of the arena (Residency::groups).
struct GroupResidency {
  int window = 0;           // 0: full attention
  std::vector<int> layers;  // the group's layers, in slot order
  PageBytes active;         // its pages held by exactly one sequence
  PageBytes shared;         // by more than one
  PageBytes cached;         // by none, kept for prefix reuse
  // Pages behind the window the group's sequences no longer hold (a full group would): what the
  // window saves now, summed over sequences.
  PageBytes released;
  uint64_t max_sequence_pages = 0;  // the most pages one sequence holds in this group
};

// Where the arena's pages are, at one moment. reserved = active + shared + cached + free.
struct Residency {
  int page_tokens = 0;
  uint64_t page_bytes = 0;  // one page: a slice per slot, K and V (PageLayout::page_bytes)
  PageBytes reserved;       // the arena
  PageBytes active;         // held by exactly one sequence
  PageBytes shared;         // held by more than one (prefixes, forks)
  PageBytes cached;         // held by none, kept for prefix reuse; evictable, LRU first
  PageBytes free;
  PageBytes peak;  // the most pages held at once (active + shared) since construction
  std::vector<GroupResidency> groups;  // per page group (one when no layer slides)
  uint64_t shared_holders = 0;         // sum of holders over shared pages
  uint64_t touched_bytes = 0;  // arena bytes the OS may have committed (below the high-water)
  uint64_t sequences = 0;
  uint64_t tokens = 0;             // summed over sequences (a shared token counts per holder)
  uint64_t tail_unused_slots = 0;  // token slots in sequences' pages not filled yet
  uint64_t staging_bytes = 0;      // f32 tails, outside the arena
  CacheCounters counters;

  // Bytes that sharing saves: what the shared pages would take if every holder had a copy.
  uint64_t shared_saved_bytes() const { return (shared_holders - shared.pages) * page_bytes; }
  // prefix hits / (hits + misses), 0 when attach_prefix() was never asked for anything.
  double prefix_hit_rate() const;
  // The report as text: a table of the page states, then one line per group of figures.
  std::string to_table() const;
  // The report as one JSON object (keys as the fields above; docs/cli.md lists them).
  std::string to_json(int indent = 2) const;
};

// One page as the pool sees it (tests and diagnostics).
struct PageInfo {
  uint32_t refcount = 0;
  bool hashed = false;  // complete page in the prefix index (used or cached)
};

// The paged KV cache. Layers are grouped by attention kind (PageLayout); a page holds
// page_tokens tokens of one group's layers, and a sequence has a page table per group plus an
// f32 tail of tokens not encoded yet:
//
//   tokens:       [ encoded pages (in place, shared or not)  | tail: f32 staging         ]
//   full group:   [ p0 | p1 | ... | pE-1                     | pE ... (taken, filling)   ]
//   sliding group:[ released ...  | pL | ... | pE-1          | pE ... (taken, filling)   ]
//
// A decode or prefill step is: add_tokens(seq, ids) -- takes every page those tokens need, so
// nothing later in the step can run out of space -- then append(seq, layer, k, v, n) for each
// layer, which stages the rows and encodes each page once it is full and outside the
// high-precision window. A page whose tokens are encoded in every layer of its group is hashed
// into the prefix index. A sliding group releases the pages behind its window when a step ends
// (commit_step, or the next add_tokens).
//
// Every operation either succeeds or throws kvpack::Error and changes nothing. A step as a whole
// can be made so too: begin_step instead of add_tokens, then commit_step when it succeeded or
// rollback_step when something failed partway (a layer's values, a kernel, the caller's code).
//
// Threads: one writer per sequence -- calls naming the same sequence (fork counts for its
// parent) must not overlap; calls on different sequences may run concurrently. Allocation, the
// prefix index and refcounts sit behind one internal lock; compact() and shrink() wait for
// every other call to finish and run alone (an open step is no call: compact() may run between
// a step's calls). A LayerView stays valid until the next add_tokens, begin_step, append,
// rollback_step, truncate or free of its sequence, or the next compact().
class Cache {
 public:
  // Validates the geometry and policy, builds one codec per layer and role and reserves the
  // arena. Throws Error naming the bad field (e.g. a budget that holds no page).
  explicit Cache(const CacheConfig& config);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  const CacheConfig& config() const;
  // Bytes of one page: a slice per slot, K and V (PageLayout::page_bytes).
  uint64_t page_bytes() const;
  uint32_t n_pages() const;
  const format::Codec& k_codec(int layer) const;
  const format::Codec& v_codec(int layer) const;

  // A new, empty sequence. `salt` separates sequences whose K/V differ for the same tokens
  // (e.g. a LoRA adapter): pages are only shared between equal salts.
  SeqId create(std::string_view salt = {});
  // Gives the empty sequence `seq` the longest run of cached whole pages that starts `tokens`
  // (each page's holders + 1) and returns how many tokens that is (a multiple of page_tokens).
  // The caller then add_tokens() the rest. Pass all but the last prompt token to keep one to
  // compute logits from.
  int64_t attach_prefix(SeqId seq, std::span<const int32_t> tokens);
  // Extends the sequence by these token ids, taking the pages they need (and a private copy of
  // a shared tail); the layers then append their rows. The tokens before these are done: sliding
  // groups first release the pages no later query reads (and count them as room). Throws "kv
  // cache full: need N pages, F free, E evictable" when the arena cannot hold them.
  void add_tokens(SeqId seq, std::span<const int32_t> tokens);
  // add_tokens as the start of a step that can be undone: until commit_step or rollback_step the
  // sequence keeps what rollback_step needs (the shared pages and staging the step replaces with
  // private copies, and its f32 tail rows when the step's appends could overwrite them), and
  // pages the step completes enter the prefix index only at commit_step. The sequence must be
  // between steps (every layer has appended every token, no step open); inside a step,
  // add_tokens, truncate and fork are refused. Throws like add_tokens, changing nothing.
  //
  // chunk > 0 promises that each layer appends the step's tokens at most `chunk` at a time, and
  // attends to (reads the view of) one chunk before appending its next: a sliding group then
  // takes at most PageLayout::ring_pages(chunk) pages for the step and recycles the step's own
  // pages once they fall behind the window, so a long prefill holds about window + 2 x chunk
  // tokens of a sliding layer instead of all of them. An append that would break the promise is
  // refused (Error, nothing changed). chunk = 0: the step takes a page for every token.
  void begin_step(SeqId seq, std::span<const int32_t> tokens, int chunk = 0);
  // Ends the open step: its complete pages enter the prefix index and what it kept is released,
  // and sliding groups release the pages behind the window of the sequence's next token.
  void commit_step(SeqId seq);
  // Undoes the open step however far its layers got: the sequence's token ids, page table, page
  // holders, layer cursors and f32 tail are exactly as before begin_step, and the pages it took
  // are free again (cached pages it evicted stay evicted; the touched arena memory and the
  // counters keep counting the work done).
  // Throws only for a sequence without an open step.
  void rollback_step(SeqId seq);
  // Appends the next n tokens' K and V of one layer (post-RoPE). k: [n][n_kv_heads][head_dim_k],
  // v: [n][n_kv_heads][head_dim_v] f32. The layer must not pass the tokens added so far.
  // Non-finite values are rejected before anything changes.
  void append(SeqId seq, int layer, const float* k, const float* v, int n);
  // The sequence at one layer as attention reads it.
  LayerView view(SeqId seq, int layer) const;
  // Drops the last n tokens. A page the cut goes through is decoded back into the f32 tail (its
  // tokens keep the format's rounding); if shared, it is copied on the next write. A sliding
  // group must still hold the pages its window needs at the new end: a cut back past tokens it
  // released throws Error (nothing changes); recompute such a sequence (free it, prefill again).
  void truncate(SeqId seq, int64_t n);
  // A new sequence sharing every page and the tail of `parent` (no copy until one writes).
  SeqId fork(SeqId parent);
  // Releases the sequence; its hashed pages stay cached until their space is needed.
  void free(SeqId seq);

  // Moves used and cached pages to the lowest ids and updates every page table. Returns the
  // number of pages moved.
  uint64_t compact();
  // Returns the memory of pages above the highest used or cached id to the OS (call compact()
  // first to make that tail long). Returns the bytes released.
  uint64_t shrink();

  Residency residency() const;

  // ---- diagnostics (tests, inspection) ----
  int64_t n_tokens(SeqId seq) const;
  std::vector<int32_t> token_ids(SeqId seq) const;
  // Every page the sequence holds in group `group` (PageLayout::groups), in token order,
  // including pages still filling; a page behind a sliding window that it released reads as
  // kNoPage.
  std::vector<uint32_t> page_table(SeqId seq, int group = 0) const;
  const PageLayout& layout() const;
  PageInfo page_info(uint32_t page) const;
  // Checks the pool's invariants and that every page's holder count equals the number of page
  // tables naming it; throws (assertion) on a violation. O(pages + tokens / page_tokens).
  void check_invariants() const;

  struct State;  // src/cache/cache_state.h

 private:
  std::unique_ptr<State> s_;
};

}  // namespace kvpack::cache
