// A model loaded from GGUF and the forward pass over the paged KV cache (src/model).
//
//   auto model = model::Model::load("stories260K.gguf");
//   cache::Cache cache(model->cache_config(policy, /*context=*/4096));
//   model::Forward fwd(*model, cache, pool);
//   cache::SeqId seq = cache.create();
//   std::span<const float> logits = fwd.eval(seq, prompt_ids);   // prefill, in chunks
//   logits = fwd.eval(seq, {&next, 1});                           // one decode step
//   logits = fwd.eval_batch(items);     // several sequences' tokens in one pass: [items][n_vocab]
//
// Each eval() appends its tokens' K and V to the cache and attention reads them back from the
// (compressed) pages: there is no other K/V store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "kvpack/attention.h"
#include "kvpack/cache.h"
#include "model/gguf.h"
#include "model/matmul.h"
#include "model/model_spec.h"
#include "model/model_weights.h"
#include "model/rope.h"
#include "model/tokenizer.h"

namespace kvpack::model {

// A model: the memory-mapped GGUF, its description (model_spec.h), weights bound in place, RoPE
// tables per layer and the tokenizer when the file has one. Immutable after load; share it
// between threads.
class Model {
 public:
  // Opens and checks `path`. Throws Error naming the file and what is wrong: malformed or
  // truncated GGUF, unsupported architecture or shape (read_runnable_spec), no tensors
  // (vocab-only), a missing tensor, a tensor of the wrong shape or an unsupported type.
  static std::unique_ptr<Model> load(const std::string& path);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const GgufFile& file() const { return file_; }
  const ModelSpec& spec() const { return spec_; }
  const Weights& weights() const { return weights_; }
  const Rope& rope(int layer) const { return ropes_[static_cast<size_t>(layer)]; }
  // nullptr when the file has no tokenizer (tokenizer.ggml.model absent or "none").
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }

  // A cache for one sequence of up to `context` tokens of this model: its geometry, the policy,
  // each layer's attention window (sliding layers keep only the pages their window reads), the
  // pages that sequence needs when it grows in steps of up to `step_chunk` tokens
  // (ForwardOptions::max_chunk; cache::sequence_pages) and a salt naming the model and its RoPE.
  cache::CacheConfig cache_config(const format::KVPolicy& policy, int64_t context,
                                  int page_tokens = 32,
                                  int step_chunk = cache::kDefaultStepChunk) const;

 private:
  Model(GgufFile file, ModelSpec spec);
  GgufFile file_;
  ModelSpec spec_;
  Weights weights_;
  std::vector<Rope> ropes_;  // (n_layers)
  std::unique_ptr<Tokenizer> tokenizer_;
};

// One intermediate tensor of the forward pass, handed to ForwardOptions::trace as soon as it is
// made (llama.cpp's eval callback): for debugging, and for tests that check every step against a
// scalar reference. Names: a projection's or norm's output carries its weight's tensor name
// ("blk.0.attn_q.weight" (after its bias), "blk.0.attn_q_norm.weight", "blk.0.ffn_norm.weight",
// "output.weight" for the logits); the other steps are "token_embd" (embeddings, scaled where the
// architecture scales them), "blk.N.q_rope", "blk.N.k_rope", "blk.N.kqv_out" (attention),
// "blk.N.ffn_inp" (after the attention residual), "blk.N.ffn_act" (the gated activation),
// "blk.N.ffn_moe_topk" (the experts chosen, ids as floats, best first), "blk.N.ffn_moe_weights"
// (their renormalised weights), "blk.N.ffn_moe_out", "blk.N.l_out" (after the FFN residual) and
// "result_output" (the logits after the final softcap, where the architecture has one).
// A pass of several sequences (Forward::eval_batch) traces each step once per sequence, with that
// sequence's rows.
struct TraceTensor {
  std::string_view name;
  int layer = -1;     // -1 outside the blocks
  int64_t pos = 0;    // position of row 0
  int rows = 0;       // the sequence's tokens in the pass (1 for logits of eval())
  int64_t cols = 0;   // floats per row
  const float* data;  // [rows][cols]
};

// One sequence's part of a batch (Forward::eval_batch): its next tokens.
struct BatchItem {
  cache::SeqId seq = 0;
  std::span<const int32_t> tokens;
};

struct ForwardOptions {
  // Rows (tokens of all sequences of a batch) per pass through the layers: every matmul of a
  // pass runs across its rows.
  int max_chunk = 256;
  // Longest sequence eval() accepts; 0: whatever the cache can hold.
  int64_t n_ctx = 0;
  QuantDot dot = QuantDot::kInt8;  // how Q8_0/Q4_0 weights meet activations (matmul.h)
  std::function<void(const TraceTensor&)> trace;  // every intermediate tensor; empty: none
  // Mixture-of-experts layers: sees the experts chosen for the token at (layer, pos), best
  // first, and may replace them; the weights then follow the router's probabilities of the new
  // ones (expert_weights in moe.h). For tests that follow a reference implementation through
  // router near-ties, where either choice is right. Empty: the router decides.
  std::function<void(int layer, int64_t pos, std::span<int32_t> experts)> route;
  // Where attention runs (kvpack/attention.h's boundary); it must outlive the Forward. nullptr:
  // the CPU kernels on the Forward's thread pool.
  attention::Backend* attention = nullptr;
};

// Runs a model over sequences of one cache. eval_batch() is the whole forward pass:
// token -> embedding -> per layer (attention block, FFN block; forward_layer.cpp) -> final norm
// -> logits. The model's description says per layer which steps run (biases, Q/K norms, post
// norms, sliding window, softcaps, dense or mixture-of-experts FFN). The thread pool runs every
// matmul and attention call. One Forward serves one call at a time.
//
// A batch's tokens are flattened into rows (token, sequence, position), up to max_chunk rows per
// pass: the matmuls, norms, FFN and experts run across every row of a pass (so a decode step of
// N sequences streams the weights once, not N times), RoPE rotates each row by its own position,
// and attention runs per sequence over its rows (the decode rows of a pass, one per sequence,
// through one decode call of the attention backend; the prefill pieces through one prefill call).
// Each row's result is bit for bit what eval() of its sequence alone gives when the sequence's
// tokens are cut into the same passes, except that decode_batch may split a long sequence's pages
// (2 x 16 pages and more) among its tasks differently, or read the prefix pages sequences share
// (forks, prefix reuse) in shared items, which changes the softmax's summation order
// (attention.h's error bounds hold either way).
class Forward {
 public:
  Forward(const Model& model, cache::Cache& cache, ThreadPool& pool, ForwardOptions options = {});

  // Runs `tokens` at the sequence's next positions (chunked) and returns the last token's logits
  // [n_vocab], valid until the next call. The tokens are one cache step (Cache::begin_step): a
  // failure anywhere leaves the sequence exactly as before the call. Throws Error for an id
  // outside the vocabulary, a sequence that would outgrow the context or the cache ("forward: N
  // tokens after M: kv cache full: ..."), and passes on the errors of the steps (e.g. a
  // non-finite K/V value from a broken model) and of options().trace.
  std::span<const float> eval(cache::SeqId seq, std::span<const int32_t> tokens);
  // As eval, with every token's logits: logits [tokens.size()][n_vocab].
  void eval_all(cache::SeqId seq, std::span<const int32_t> tokens, float* logits);
  // Runs every item's tokens at its sequence's next positions, all items' rows together, and
  // returns each item's last-token logits [items.size()][n_vocab], valid until the next call.
  // eval() is the one-item batch. The items' tokens are one cache step per sequence, all begun
  // before any work and committed together at the end: a failure anywhere rolls every sequence
  // back to exactly as before the call (cached pages an earlier item's step evicted stay
  // evicted, as Cache::rollback_step says). The items name distinct sequences. Throws as eval(),
  // naming the sequence when there are several items.
  std::span<const float> eval_batch(std::span<const BatchItem> items);

  const ForwardOptions& options() const { return options_; }
  // The attention backend the passes run on (its decode_stats() count every decode step).
  const attention::Backend& attention() const { return *attention_; }

 private:
  // A run of rows of one item in the current pass: rows [row, row + n) hold its tokens
  // off..off + n - 1, at positions pos..pos + n - 1.
  struct Piece {
    size_t item;
    cache::SeqId seq;
    int row;
    int n;
    int64_t off;
    int64_t pos;
  };
  // Where the current pass is: its layer (-1 outside the blocks), its rows and their pieces
  // (which cover rows 0..n - 1).
  struct Step {
    int layer;
    int n;
    std::span<const Piece> pieces;
  };
  void check(std::span<const BatchItem> items) const;
  // eval_batch, eval and eval_all: each item's tokens as one cache step, in passes of up to
  // max_chunk rows; each item's last logits at logits + item * n_vocab, or (`all`) every row's
  // at logits + (its row across all items) * n_vocab.
  void run(std::span<const BatchItem> items, float* logits, bool all);
  void begin_steps(std::span<const BatchItem> items);
  // The next pass from item `item`, token `off` on: fills pieces_ (decode rows first), tokens_
  // and row_pos_; advances item/off past it.
  void plan_pass(std::span<const BatchItem> items, size_t& item, int64_t& off);
  void pass(std::span<const BatchItem> items, float* logits, bool all);
  void embed(const Step& s);
  // logits = the final norm and W_out of the rows the pieces of `out` name (row: the source row
  // in x_), written as consecutive rows.
  void output(const Step& out, float* logits);
  // One transformer block (forward_layer.cpp), in place on the residual stream x_.
  void layer(const Step& s);
  void attention_block(const Step& s);
  void ffn_block(const Step& s);
  // The steps of a block, each on all n rows of the pass, each traced.
  void norm(const NormWeights& w, const float* x, float* y, const Step& s);
  void project(const WeightMatrix& w, const NormWeights& bias, const float* x, float* y,
               const Step& s);
  void head_norm(const NormWeights& w, float* x, int n_heads, const Step& s);
  void rope(float* x, int n_heads, const Step& s, std::string_view name);
  void attend(const Step& s);
  void dense_ffn(const LayerWeights& w, const Step& s);  // h_ -> h_
  void moe_ffn(const LayerWeights& w, const Step& s);    // h_ -> h_ (forward_moe.cpp)
  void residual(const float* y, const Step& s, std::string_view name);
  // Hands options().trace each piece's rows of data [s.n][cols].
  void trace(std::string_view name, const Step& s, int64_t cols, const float* data) const;

  const Model& model_;
  const ModelSpec& spec_;
  const Weights& w_;
  cache::Cache& cache_;
  ThreadPool& pool_;
  ForwardOptions options_;
  std::vector<attention::Params> att_params_;          // (n_layers) window, scale, softcap
  std::unique_ptr<attention::Backend> own_attention_;  // the CPU one unless options name one
  attention::Backend* attention_ = nullptr;

  // The current call: each item's first position and first row across all items.
  std::vector<int64_t> start_;     // (items)
  std::vector<int64_t> item_row_;  // (items)
  // The current pass: its pieces, each row's token id and position.
  std::vector<Piece> pieces_;
  std::vector<int32_t> tokens_;                  // (max_chunk)
  std::vector<int64_t> row_pos_;                 // (max_chunk)
  std::vector<cache::LayerView> views_;          // decode rows' views at the layer at hand
  std::vector<attention::PrefillSeq> prefills_;  // the prefill pieces at the layer at hand
  // The rows whose logits the pass computes, in item order: pieces (row: the output row) and
  // each output row's row in x_.
  std::vector<Piece> out_pieces_;
  std::vector<int> out_src_;
  size_t logits_rows_ = 0;  // rows logits_ holds

  // Activations of one pass; row t belongs to row t of the pass.
  AlignedArray<float> x_;       // (max_chunk, n_embd) residual stream
  AlignedArray<float> h_;       // (max_chunk, n_embd) normed sub-block input, then its output
  AlignedArray<float> q_;       // (max_chunk, n_heads, head_dim_k)
  AlignedArray<float> k_;       // (max_chunk, n_kv_heads, head_dim_k)
  AlignedArray<float> v_;       // (max_chunk, n_kv_heads, head_dim_v)
  AlignedArray<float> att_;     // (max_chunk, n_heads, head_dim_v) attention output per head
  AlignedArray<float> gate_;    // (max_chunk, ffn_width) W_gate h, then act(W_gate h) * W_up h
  AlignedArray<float> up_;      // (max_chunk, ffn_width) W_up h
  AlignedArray<float> logits_;  // (logits_rows_, n_vocab) each item's last-token logits
  // Mixture of experts (empty for a dense FFN).
  AlignedArray<float> router_;        // (max_chunk, n_expert) router logits
  std::vector<int32_t> moe_ids_;      // (max_chunk, n_expert_used) experts chosen per row
  std::vector<float> moe_weights_;    // (max_chunk, n_expert_used) their weights
  std::vector<int32_t> expert_rows_;  // (max_chunk) rows routed to the expert at hand
  AlignedArray<float> expert_in_;     // (max_chunk, n_embd) those rows' FFN input
  AlignedArray<float> expert_out_;    // (max_chunk, n_embd) the expert's output for them
  AlignedArray<float> moe_out_;       // (max_chunk, n_embd) the weighted sum over experts
};

}  // namespace kvpack::model
