// Attention over the paged, compressed KV cache (src/attention). Kernels read each page's codes
// in place through the K and V formats (specialised SIMD kernels where a format has them, the
// codec's own role operations otherwise); nothing decodes the cache into a copy.
//
// Conventions shared by every entry point:
// * q rows are [n_q_heads][head_dim_k] f32 per query token; out rows [n_q_heads][head_dim_v].
// * Query head i reads KV head i / (n_q_heads / n_kv_heads) (grouped-query attention).
// * The new tokens' K and V are already in the view (cache.append before attention), so a view of
//   n tokens answers queries at positions n - n_new .. n - 1; query at position p sees keys
//   0..p (minus the sliding window).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/thread_pool.h"
#include "kvpack/cache.h"

namespace kvpack::attention {

// Bound on the relative error of the exponentials the kernels' softmax computes (a polynomial
// exp2; the test tolerances use it).
inline constexpr double kExpRelError = 2.5e-7;

// Per-layer options. Defaults give plain causal softmax attention with scale 1/sqrt(head_dim_k).
struct Params {
  // Multiplies <q, k> before softmax; 0 means 1/sqrt(head_dim_k).
  float scale = 0.0f;
  // Gemma 2 logit soft-capping: logit = softcap * tanh(logit / softcap) after scaling; 0 = off.
  float softcap = 0.0f;
  // Sliding window: a query at position p sees keys p - window + 1 .. p; 0 = unlimited.
  int window = 0;
  // Attention-sink logits, one per query head ([n_q_heads], natural-log units, not scaled):
  // each adds exp(sink) to its head's softmax denominator and nothing to the output. nullptr
  // = none.
  const float* sinks = nullptr;
  // Read every format through its codec's generic role operations instead of the specialised
  // SIMD kernels (for tests and comparisons; same results within float rounding, slower).
  bool codec_ops = false;
  // The value kernels of integer-code formats (q8, q4, q4a, turbo4) round each page's weights
  // (times the tokens' steps) to integers per query row and scale group, so values are summed
  // with integer dot products (KernelInfo::weight_bits; error in docs/results.md). True keeps
  // those weights in f32 instead (exact up to f32 rounding, slower).
  bool exact_value_weights = false;
  // decode_batch: sequences whose page tables begin with the same page ids (shared prefix
  // pages of the paged cache) read those pages once for all of them, their query rows stacked
  // against each page, and merge that state with their own pages' (same results within f32
  // rounding; with integer value weights, within their rounding). False reads every sequence's
  // pages on its own (for comparisons).
  bool share_prefixes = true;
};

// Scratch memory for attention calls, reused across calls and grown on demand. Its size depends
// on the thread count, head counts, head dims and page size, never on the context length (see
// decode_workspace_bytes). One Workspace serves one call at a time.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Bytes currently held.
  size_t bytes() const;

  struct Buffers;  // defined in src/attention/workspace.h
  Buffers& buffers() { return *buffers_; }

 private:
  std::unique_ptr<Buffers> buffers_;
};

// One decode step for one sequence: the view's last token is the query's position.
// q: [n_q_heads][head_dim_k], out: [n_q_heads][head_dim_v]. n_q_heads must be a multiple of
// the view's n_kv_heads. Throws Error for inconsistent shapes or parameters.
void decode(const cache::LayerView& view, const float* q, int n_q_heads, float* out,
            const Params& params, ThreadPool& pool, Workspace& ws);

// What a decode_batch call read from the encoded pages (the f32 tails are not counted).
struct DecodeStats {
  uint64_t page_blocks = 0;  // (page, KV head) reads, each one K block and one V block
  uint64_t bytes = 0;        // their K and V bytes
};

// One decode step for a batch of sequences of the same layer (same codecs and geometry).
// q: [n_seq][n_q_heads][head_dim_k], out: [n_seq][n_q_heads][head_dim_v]; sinks apply to all.
// Shared prefix pages are read once per call (Params::share_prefixes). stats: if not null,
// receives what the call read.
void decode_batch(std::span<const cache::LayerView> views, const float* q, int n_q_heads,
                  float* out, const Params& params, ThreadPool& pool, Workspace& ws,
                  DecodeStats* stats = nullptr);

// Causal attention for the last n_new tokens of the view (already appended): token t of the
// chunk is at position n_tokens - n_new + t and sees keys up to and including itself.
// q: [n_new][n_q_heads][head_dim_k], out: [n_new][n_q_heads][head_dim_v].
void prefill(const cache::LayerView& view, const float* q, int n_new, int n_q_heads, float* out,
             const Params& params, ThreadPool& pool, Workspace& ws);

// The workspace bytes decode() needs for this geometry with `n_threads` threads; independent of
// the view's token count (a test holds it to that).
size_t decode_workspace_bytes(const cache::LayerView& view, int n_q_heads, int n_threads);

// Scalar reference: decodes every page with the codecs' reference decode() and computes in
// double. Same shapes and semantics as prefill() (decode is the n_new == 1 case). For tests and
// debugging; it allocates O(context) memory.
void reference(const cache::LayerView& view, const float* q, int n_new, int n_q_heads, float* out,
               const Params& params);

// How a K format or V format is read by the fast path, for reports and test tolerances.
struct KernelInfo {
  std::string name;  // e.g. "f16 simd (AVX3)", "q8 vnni", "codec ops"
  // K role: the query is rounded to signed integers of this many bits (symmetric, one scale per
  // group of query_group channels, or per row when query_group is 0) before the dot products; 0
  // when it stays f32. Rotated formats round the rotated query (and the QJL ones S q as well).
  int query_bits = 0;
  int query_group = 0;
  // K role: the kernel reads each key element (in the format's own basis) with at most this
  // relative error beyond the format's decode, e.g. turbo4's centroids as an int8 table.
  double key_rel_error = 0;
  // V role: per query row, scale group (the format's groups of 32 channels, or all channels for
  // turbo4) and chunk of up to weight_span_pages consecutive pages, the products weight x step
  // (or x norm) are rounded to unsigned integers of this many bits against c = the chunk's
  // largest weight x its largest step / (2^weight_bits - 1): an absolute error of at most c/2
  // per token. 0: f32 weights.
  int weight_bits = 0;
  int weight_span_pages = 0;
  // V role: like key_rel_error, for value elements (turbo4's int8 centroid table).
  double value_rel_error = 0;
};

// The kernel decode() and prefill() use for this codec and geometry under these parameters.
KernelInfo kernel_info(const format::Codec& codec, const Params& params = Params{});

// Which kernels read a cache's layers on the SIMD target in force, for tools to print.
struct KernelReport {
  std::string target;  // kvpack's name of the SIMD target, e.g. "avx2"
  std::vector<std::string>
      layers;  // e.g. "layers 0-3: K q8 int8-dot (AVX2), V q8 int-weights (AVX2)"
  // One line per layer and role read through its codec operations (no SIMD kernel serves the
  // geometry), e.g. "layer 2: q8 keys at head dim 40 and 32-token pages has no SIMD kernel; ...".
  std::vector<std::string> fallbacks;
};
KernelReport report_kernels(const cache::Cache& cache, const Params& params = Params{});

// ---- the backend boundary ----

// One prefill piece of a batch: the last n_new tokens of `view` (already appended), their
// queries q: [n_new][n_q_heads][head_dim_k] and outputs out: [n_new][n_q_heads][head_dim_v].
struct PrefillSeq {
  cache::LayerView view;
  const float* q = nullptr;
  int n_new = 0;
  float* out = nullptr;
};

// Where attention runs, at the level the model calls it: one layer, a batch of sequences. The
// model makes one decode() call per layer and pass for all of its decode rows and one prefill()
// call for its prefill pieces; the backend owns its scratch memory and how it uses the hardware
// (calls are per layer, never per page). Today's CPU kernels are one backend
// (make_cpu_backend); a GPU backend would be another, handed to the model in its options.
// One backend serves one call at a time.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // One decode step per view (decode_batch's shapes and semantics).
  virtual void decode(std::span<const cache::LayerView> views, const float* q, int n_q_heads,
                      float* out, const Params& params) = 0;
  // Causal prefill of each piece (prefill()'s semantics per piece).
  virtual void prefill(std::span<const PrefillSeq> seqs, int n_q_heads, const Params& params) = 0;
  // Scratch bytes held now.
  virtual size_t workspace_bytes() const = 0;
  // What decode() calls have read from encoded pages since construction (summed).
  virtual DecodeStats decode_stats() const = 0;
};

// The CPU kernels behind the boundary, running on `pool` (which must outlive the backend).
std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool);

}  // namespace kvpack::attention
