// The forward pass of a Llama-family decoder over the paged KV cache. `layer` is one transformer
// block as the paper writes it (pre-norm residual blocks, grouped-query attention with RoPE,
// SwiGLU FFN); the steps below it work on every row of a chunk and trace their output; the rest
// is plumbing: chunking, embedding, the final norm and the logits.
#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"
#include "kvpack/model.h"
#include "model/ops.h"

namespace kvpack::model {
namespace {

// Rows per task below which per-row work (norms, RoPE) is not worth handing to the pool.
constexpr int kRowsPerTask = 4;

// Runs fn(t) for t < n, in tasks of kRowsPerTask rows across the pool; a single task (a decode
// step) runs inline, sparing the pool's wake-up.
template <typename F>
void for_rows(ThreadPool& pool, int n, F&& fn) {
  if (n <= kRowsPerTask) {
    for (int t = 0; t < n; ++t) fn(t);
    return;
  }
  pool.parallel_for((n + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task, int) {
    const int end = std::min<int>(n, static_cast<int>(task + 1) * kRowsPerTask);
    for (int t = static_cast<int>(task) * kRowsPerTask; t < end; ++t) fn(t);
  });
}

}  // namespace

Forward::Forward(const Model& model, cache::Cache& cache, ThreadPool& pool, ForwardOptions options)
    : model_(model),
      hp_(model.hparams()),
      w_(model.weights()),
      cache_(cache),
      pool_(pool),
      options_(std::move(options)) {
  if (options_.max_chunk < 1) fail("forward: max_chunk {} must be at least 1", options_.max_chunk);
  const cache::CacheConfig& c = cache.config();
  if (c.n_layers != hp_.n_layers || c.n_kv_heads != hp_.n_kv_heads ||
      c.head_dim_k != hp_.head_dim_k || c.head_dim_v != hp_.head_dim_v) {
    fail(
        "forward: the cache holds {} layers x {} KV heads of dims {}/{}, the model needs {} x {} "
        "of {}/{}",
        c.n_layers, c.n_kv_heads, c.head_dim_k, c.head_dim_v, hp_.n_layers, hp_.n_kv_heads,
        hp_.head_dim_k, hp_.head_dim_v);
  }
  const size_t chunk = static_cast<size_t>(options_.max_chunk);
  x_ = make_aligned<float>(chunk * hp_.n_embd);
  h_ = make_aligned<float>(chunk * hp_.n_embd);
  q_ = make_aligned<float>(chunk * hp_.q_dim());
  k_ = make_aligned<float>(chunk * hp_.k_dim());
  v_ = make_aligned<float>(chunk * hp_.v_dim());
  att_ = make_aligned<float>(chunk * hp_.att_dim());
  gate_ = make_aligned<float>(chunk * hp_.n_ff);
  up_ = make_aligned<float>(chunk * hp_.n_ff);
  logits_ = make_aligned<float>(static_cast<size_t>(hp_.n_vocab));
}

// One transformer block over the chunk's n tokens at positions pos .. pos + n - 1, in place on
// the residual stream x:
//   x = x + W_o Attention(RoPE(W_q h), RoPE(W_k h), W_v h),   h = RMSNorm(x)
//   x = x + W_down (SiLU(W_gate h) * W_up h),                 h = RMSNorm(x)
void Forward::layer(cache::SeqId seq, const Step& s) {
  const LayerWeights& w = w_.layers[static_cast<size_t>(s.layer)];

  // Attention sub-block.
  norm(w.attn_norm, x_.get(), h_.get(), s);
  project(w.wq, h_.get(), q_.get(), s);
  project(w.wk, h_.get(), k_.get(), s);
  project(w.wv, h_.get(), v_.get(), s);
  rope(q_.get(), hp_.n_heads, s, "q_rope");
  rope(k_.get(), hp_.n_kv_heads, s, "k_rope");
  cache_.append(seq, s.layer, k_.get(), v_.get(), s.n);
  attend(seq, s);  // att = softmax(q K^T / sqrt(d)) V over the cached pages
  project(w.wo, att_.get(), h_.get(), s);
  residual(h_.get(), s, "ffn_inp");

  // Feed-forward sub-block.
  norm(w.ffn_norm, x_.get(), h_.get(), s);
  project(w.ffn_gate, h_.get(), gate_.get(), s);
  project(w.ffn_up, h_.get(), up_.get(), s);
  ffn_activation(s);  // gate = SiLU(gate) * up
  project(w.ffn_down, gate_.get(), h_.get(), s);
  residual(h_.get(), s, "l_out");
}

// y = RMSNorm(x) * w, row by row.
void Forward::norm(const NormWeights& w, const float* x, float* y, const Step& s) {
  const int64_t d = hp_.n_embd;
  for_rows(pool_, s.n, [&](int t) { rms_norm(x + t * d, w.w.data(), hp_.norm_eps, d, y + t * d); });
  trace(w.name, s, d, y);
}

// y = x W^T: (n, rows) from (n, cols).
void Forward::project(const WeightMatrix& w, const float* x, float* y, const Step& s) {
  matmul(w, x, s.n, y, pool_, options_.dot);
  trace(w.name, s, w.rows, y);
}

// Rotates each head of each row by its position.
void Forward::rope(float* x, int n_heads, const Step& s, std::string_view name) {
  const int64_t row = int64_t{n_heads} * hp_.head_dim_k;
  for_rows(pool_, s.n,
           [&](int t) { model_.rope().apply(x + t * row, n_heads, hp_.head_dim_k, s.pos + t); });
  trace(name, s, row, x);
}

// Attention of the chunk's queries over the sequence's pages, which already hold the chunk's
// own K and V: a decode step for one token, causal prefill for more.
void Forward::attend(cache::SeqId seq, const Step& s) {
  const cache::LayerView view = cache_.view(seq, s.layer);
  if (s.n == 1) {
    attention::decode(view, q_.get(), hp_.n_heads, att_.get(), att_params_, pool_, att_ws_);
  } else {
    attention::prefill(view, q_.get(), s.n, hp_.n_heads, att_.get(), att_params_, pool_, att_ws_);
  }
  trace("kqv_out", s, hp_.att_dim(), att_.get());
}

void Forward::ffn_activation(const Step& s) {
  swiglu(gate_.get(), up_.get(), int64_t{s.n} * hp_.n_ff, gate_.get());
  trace("ffn_act", s, hp_.n_ff, gate_.get());
}

// x += y: a residual connection.
void Forward::residual(const float* y, const Step& s, std::string_view name) {
  float* x = x_.get();
  const size_t n = static_cast<size_t>(s.n) * hp_.n_embd;
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
  trace(name, s, hp_.n_embd, x);
}

void Forward::trace(std::string_view name, const Step& s, int64_t cols, const float* data) const {
  if (!options_.trace) return;
  // Steps without a tensor of their own are named within their block, as llama.cpp does.
  const std::string full = s.layer >= 0 && name.find('.') == std::string_view::npos
                               ? fmt::format("blk.{}.{}", s.layer, name)
                               : std::string(name);
  options_.trace({full, s.layer, s.pos, s.n, cols, data});
}

void Forward::chunk(cache::SeqId seq, std::span<const int32_t> tokens, int64_t pos, float* logits,
                    bool all) {
  const int n = static_cast<int>(tokens.size());
  get_rows(w_.token_embd, tokens.data(), n, x_.get());
  trace("token_embd", {-1, pos, n}, hp_.n_embd, x_.get());
  for (int l = 0; l < hp_.n_layers; ++l) layer(seq, {l, pos, n});
  // logits = W_out RMSNorm(x) for the rows asked for.
  const int first = all ? 0 : n - 1;
  const Step out{-1, pos + first, n - first};
  norm(w_.output_norm, x_.get() + static_cast<size_t>(first) * hp_.n_embd, h_.get(), out);
  matmul(w_.output, h_.get(), out.n, logits, pool_, options_.dot);
  trace("output.weight", out, hp_.n_vocab, logits);  // also when the output is tied
}

void Forward::check(cache::SeqId seq, std::span<const int32_t> tokens) const {
  if (tokens.empty()) fail("forward: no tokens to evaluate");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab) {
      fail("forward: token {} (id {}) is outside the vocabulary of {} tokens", i, tokens[i],
           hp_.n_vocab);
    }
  }
  const int64_t have = cache_.n_tokens(seq);
  if (options_.n_ctx > 0 && have + static_cast<int64_t>(tokens.size()) > options_.n_ctx) {
    fail("forward: {} more tokens after {} exceed the context of {} tokens", tokens.size(), have,
         options_.n_ctx);
  }
}

void Forward::run(cache::SeqId seq, std::span<const int32_t> tokens, float* logits, bool all) {
  check(seq, tokens);
  const int64_t start = cache_.n_tokens(seq);
  try {
    // Takes every page the tokens need before any layer writes; chunks of max_chunk tokens let
    // sliding-window layers recycle the pages a long prompt leaves behind their window.
    cache_.begin_step(seq, tokens, options_.max_chunk);
  } catch (const Error& e) {
    fail("forward: {} tokens after {}: {}", tokens.size(), start, e.what());
  }
  try {
    const auto max_chunk = static_cast<size_t>(options_.max_chunk);
    for (size_t at = 0; at < tokens.size(); at += max_chunk) {
      const size_t n = std::min(tokens.size() - at, max_chunk);
      float* out = all ? logits + at * hp_.n_vocab : logits;
      chunk(seq, tokens.subspan(at, n), start + static_cast<int64_t>(at), out, all);
    }
  } catch (...) {
    cache_.rollback_step(seq);  // whatever failed (a value, a kernel, the trace callback)
    throw;
  }
  cache_.commit_step(seq);
}

std::span<const float> Forward::eval(cache::SeqId seq, std::span<const int32_t> tokens) {
  run(seq, tokens, logits_.get(), /*all=*/false);
  return {logits_.get(), static_cast<size_t>(hp_.n_vocab)};
}

void Forward::eval_all(cache::SeqId seq, std::span<const int32_t> tokens, float* logits) {
  run(seq, tokens, logits, /*all=*/true);
}

}  // namespace kvpack::model
