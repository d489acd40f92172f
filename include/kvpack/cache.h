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
//   tokens: [ page_ids[0] | page_ids[1] | ... | page_ids[P-1] | tail (tail_tokens) ]
//            <------------ P * page_tokens, encoded ----------> <--- f32, as appended --->
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

  int64_t encoded_tokens() const { return static_cast<int64_t>(page_ids.size()) * page_tokens; }
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

// What a cache is built for: the model's KV geometry, the K/V policy, the budget and the salt
// that keeps pages of different models or settings from ever being shared.
struct CacheConfig {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim_k = 128;
  int head_dim_v = 128;
  int page_tokens = 32;  // 16..256
  format::KVPolicy policy;
  // The arena: exactly one of the two. budget_bytes holds floor(budget / page bytes) pages,
  // where page bytes = page_tokens tokens in every layer, K and V, in that layer's formats.
  uint64_t budget_bytes = 0;
  uint32_t n_pages = 0;
  // Tokens that stay unencoded (f32) behind the newest one, KIVI's residual window. 0: only the
  // partly filled last page stays unencoded.
  int hp_window = 0;
  // Identifies the producer of K/V: model name and RoPE settings (theta, scaling), e.g.
  // "Llama-3.1-8B rope_theta=500000 rope_scaling=llama3:8". Hashed into every page key together
  // with the per-layer formats and the geometry.
  std::string salt;
  uint64_t model_seed = 0;  // seeds the codecs' rotations and sketches (format::layer_seed)
  int max_sequences = 4096;
};

// Identifies a sequence in one cache; valid from create()/fork() until free().
using SeqId = uint32_t;

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

// Where the arena's pages are, at one moment. reserved = active + shared + cached + free.
struct Residency {
  int page_tokens = 0;
  uint64_t page_bytes = 0;  // one page, all layers, K and V
  PageBytes reserved;       // the arena
  PageBytes active;         // held by exactly one sequence
  PageBytes shared;         // held by more than one (prefixes, forks)
  PageBytes cached;         // held by none, kept for prefix reuse; evictable, LRU first
  PageBytes free;
  uint64_t shared_holders = 0;  // sum of holders over shared pages
  uint64_t touched_bytes = 0;   // arena bytes the OS may have committed (below the high-water)
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

// The paged KV cache. Pages hold page_tokens tokens of every layer; a page id is valid across
// all layers. A sequence is a page table plus an f32 tail of tokens not encoded yet:
//
//   tokens:  [ encoded pages (in place, shared or not)  | tail: f32 staging           ]
//   pages:   [ p0 | p1 | ... | pE-1                     | pE ... (taken, filling)     ]
//
// A decode or prefill step is: add_tokens(seq, ids) -- takes every page those tokens need, so
// nothing later in the step can run out of space -- then append(seq, layer, k, v, n) for each
// layer, which stages the rows and encodes each page once it is full and outside the
// high-precision window. A page whose tokens are encoded in every layer is hashed into the
// prefix index.
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
  // Bytes of one page across all layers (K and V).
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
  // a shared tail); the layers then append their rows. Throws "kv cache full:
  // need N pages, F free, E evictable" when the arena cannot hold them.
  void add_tokens(SeqId seq, std::span<const int32_t> tokens);
  // add_tokens as the start of a step that can be undone: until commit_step or rollback_step the
  // sequence keeps what rollback_step needs (the shared pages and staging the step replaces with
  // private copies, and its f32 tail rows when the step's appends could overwrite them), and
  // pages the step completes enter the prefix index only at commit_step. The sequence must be
  // between steps (every layer has appended every token, no step open); inside a step,
  // add_tokens, truncate and fork are refused. Throws like add_tokens, changing nothing.
  void begin_step(SeqId seq, std::span<const int32_t> tokens);
  // Ends the open step: its complete pages enter the prefix index and what it kept is released.
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
  // tokens keep the format's rounding); if shared, it is copied on the next write.
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
  // Every page the sequence holds, in token order, including pages still filling.
  std::vector<uint32_t> page_table(SeqId seq) const;
  PageInfo page_info(uint32_t page) const;
  // Checks the pool's invariants and that every page's holder count equals the number of page
  // tables naming it; throws (assertion) on a violation. O(pages + tokens / page_tokens).
  void check_invariants() const;

  struct State;  // src/cache/cache_state.h

 private:
  std::unique_ptr<State> s_;
};

}  // namespace kvpack::cache
