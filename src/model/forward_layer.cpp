// One transformer block as the papers write it, over the rows of a chunk:
//
//   x = x + PostNorm(W_o Attention(RoPE(QNorm(W_q h + b_q)), RoPE(KNorm(W_k h + b_k)), W_v h +
//   b_v))
//                                                                          h = RMSNorm(x)
//   x = x + PostNorm(FFN(h))                                               h = RMSNorm(x)
//   FFN(h) = W_down (act(W_gate h) * W_up h)   or a mixture of such experts (forward_moe.cpp)
//
// The biases (Qwen 2), Q/K norms (Qwen 3, Gemma 3), post norms (Gemma) and the activation (SiLU,
// GELU) are the architecture's columns in arch.h; a step whose weights the architecture does not
// have is skipped. Window, query scale and softcap are the layer's attention parameters. Each
// step works on every row of the pass, whichever sequence it belongs to; only the cache appends
// and attend() go piece by piece (sequence by sequence). Each step traces its output.
#include <algorithm>

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

void Forward::layer(const Step& s) {
  attention_block(s);
  ffn_block(s);
}

void Forward::attention_block(const Step& s) {
  const LayerWeights& w = w_.layers[static_cast<size_t>(s.layer)];
  const int n_heads = spec_.n_heads(), n_kv_heads = spec_.n_kv_heads();
  norm(w.attn_norm, x_.get(), h_.get(), s);
  project(w.wq, w.bq, h_.get(), q_.get(), s);
  project(w.wk, w.bk, h_.get(), k_.get(), s);
  project(w.wv, w.bv, h_.get(), v_.get(), s);
  head_norm(w.q_norm, q_.get(), n_heads, s);
  head_norm(w.k_norm, k_.get(), n_kv_heads, s);
  rope(q_.get(), n_heads, s, "q_rope");
  rope(k_.get(), n_kv_heads, s, "k_rope");
  for (const Piece& p : s.pieces) {
    cache_.append(p.seq, s.layer, k_.get() + int64_t{p.row} * spec_.k_dim(),
                  v_.get() + int64_t{p.row} * spec_.v_dim(), p.n);
  }
  attend(s);  // att = softmax(scale q K^T (capped), within the window) V over the pages
  project(w.wo, {}, att_.get(), h_.get(), s);
  if (!w.post_attn_norm.empty()) norm(w.post_attn_norm, h_.get(), h_.get(), s);
  residual(h_.get(), s, "ffn_inp");
}

void Forward::ffn_block(const Step& s) {
  const LayerWeights& w = w_.layers[static_cast<size_t>(s.layer)];
  norm(w.ffn_norm, x_.get(), h_.get(), s);
  if (w.experts.empty()) {
    dense_ffn(w, s);
  } else {
    moe_ffn(w, s);
  }
  if (!w.post_ffn_norm.empty()) norm(w.post_ffn_norm, h_.get(), h_.get(), s);
  residual(h_.get(), s, "l_out");
}

// h = W_down (act(W_gate h) * W_up h).
void Forward::dense_ffn(const LayerWeights& w, const Step& s) {
  project(w.ffn_gate, {}, h_.get(), gate_.get(), s);
  project(w.ffn_up, {}, h_.get(), up_.get(), s);
  const int64_t n = int64_t{s.n} * spec_.n_ff;
  if (spec_.traits->ffn == FfnKind::geglu) {
    geglu(gate_.get(), up_.get(), n, gate_.get());
  } else {
    swiglu(gate_.get(), up_.get(), n, gate_.get());
  }
  trace("ffn_act", s, spec_.n_ff, gate_.get());
  project(w.ffn_down, {}, gate_.get(), h_.get(), s);
}

// y = RMSNorm(x) * w, row by row.
void Forward::norm(const NormWeights& w, const float* x, float* y, const Step& s) {
  const int64_t d = spec_.n_embd;
  for_rows(pool_, s.n,
           [&](int t) { rms_norm(x + t * d, w.w.data(), spec_.norm_eps, d, y + t * d); });
  trace(w.name, s, d, y);
}

// y = x W^T (+ bias): (n, rows) from (n, cols).
void Forward::project(const WeightMatrix& w, const NormWeights& bias, const float* x, float* y,
                      const Step& s) {
  matmul(w, x, s.n, y, pool_, options_.dot);
  if (!bias.empty()) {
    const float* b = bias.w.data();
    for (int64_t t = 0; t < s.n; ++t) {
      float* row = y + t * w.rows;
      for (int64_t i = 0; i < w.rows; ++i) row[i] += b[i];
    }
  }
  trace(w.name, s, w.rows, y);
}

// RMSNorm of every head of every row over its head_dim_k values (Q/K norm), in place.
void Forward::head_norm(const NormWeights& w, float* x, int n_heads, const Step& s) {
  if (w.empty()) return;
  const int64_t d = spec_.head_dim_k, row = d * n_heads;
  for_rows(pool_, s.n, [&](int t) {
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + t * row + h * d;
      rms_norm(v, w.w.data(), spec_.norm_eps, d, v);
    }
  });
  trace(w.name, s, row, x);
}

// Rotates each head of each row by the row's own position, with the layer's RoPE.
void Forward::rope(float* x, int n_heads, const Step& s, std::string_view name) {
  const int64_t row = int64_t{n_heads} * spec_.head_dim_k;
  const Rope& r = model_.rope(s.layer);
  for_rows(pool_, s.n, [&](int t) {
    r.apply(x + t * row, n_heads, spec_.head_dim_k, row_pos_[static_cast<size_t>(t)]);
  });
  trace(name, s, row, x);
}

// Attention of each piece's queries over its sequence's pages, which already hold the pass's
// own K and V: the decode rows (the first pieces, one row each) as one batched decode step, the
// pieces of several rows as causal prefill, each kind one call of the attention backend.
void Forward::attend(const Step& s) {
  const attention::Params& p = att_params_[static_cast<size_t>(s.layer)];
  const int n_heads = spec_.n_heads();
  size_t n_decode = 0;
  views_.clear();
  while (n_decode < s.pieces.size() && s.pieces[n_decode].n == 1) {
    views_.push_back(cache_.view(s.pieces[n_decode].seq, s.layer));
    ++n_decode;
  }
  if (n_decode > 0) attention_->decode(views_, q_.get(), n_heads, att_.get(), p);
  prefills_.clear();
  for (const Piece& piece : s.pieces.subspan(n_decode)) {
    prefills_.push_back({cache_.view(piece.seq, s.layer),
                         q_.get() + int64_t{piece.row} * spec_.q_dim(), piece.n,
                         att_.get() + int64_t{piece.row} * spec_.att_dim()});
  }
  if (!prefills_.empty()) attention_->prefill(prefills_, n_heads, p);
  trace("kqv_out", s, spec_.att_dim(), att_.get());
}

// x += y: a residual connection.
void Forward::residual(const float* y, const Step& s, std::string_view name) {
  float* x = x_.get();
  const size_t n = static_cast<size_t>(s.n) * spec_.n_embd;
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
  trace(name, s, spec_.n_embd, x);
}

}  // namespace kvpack::model
