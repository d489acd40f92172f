#include "model/model_weights.h"

#include <fmt/format.h>

#include "base/error.h"
#include "model/gguf.h"
#include "model/quant_ref.h"

namespace kvpack::model {
namespace {

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const GgufTensor* find(const std::string& name) const { return f_.find_tensor(name); }

  const GgufTensor& require(const std::string& name) const {
    const GgufTensor* t = find(name);
    if (t == nullptr) fail("{}: missing tensor '{}'", f_.path(), name);
    return *t;
  }

  // A (rows, cols) matrix: ggml shape [cols, rows].
  WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const GgufTensor& t = require(name);
    WeightMatrix w;
    try {
      w = WeightMatrix::from_tensor(t);
    } catch (const Error& e) {
      fail("{}: {}", f_.path(), e.what());
    }
    if (w.rows != rows || w.cols != cols) {
      fail("{}: tensor '{}' has shape [{}], expected [{}, {}]", f_.path(), name,
           fmt::join(t.shape, ", "), cols, rows);
    }
    return w;
  }

  // A vector of n values, dequantized to f32.
  std::vector<float> vector(const std::string& name, int64_t n) const {
    const WeightMatrix w = matrix(name, 1, n);
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row_ref(w.type, w.data, out.data(), n);
    return out;
  }

  NormWeights norm(const std::string& name, int64_t n) const { return {name, vector(name, n)}; }

  // n_expert (rows, cols) matrices stacked in one tensor of ggml shape [cols, rows, n_expert]:
  // one view per expert into the tensor's data.
  std::vector<WeightMatrix> experts(const std::string& name, int64_t rows, int64_t cols,
                                    int n_expert) const {
    GgufTensor t = require(name);
    if (t.shape.size() != 3 || t.shape[0] != cols || t.shape[1] != rows || t.shape[2] != n_expert) {
      fail("{}: tensor '{}' has shape [{}], expected [{}, {}, {}]", f_.path(), name,
           fmt::join(t.shape, ", "), cols, rows, n_expert);
    }
    t.shape = {cols, rows * n_expert};  // the experts' rows one after another
    WeightMatrix all;
    try {
      all = WeightMatrix::from_tensor(t);
    } catch (const Error& e) {
      fail("{}: {}", f_.path(), e.what());
    }
    std::vector<WeightMatrix> out;
    for (int e = 0; e < n_expert; ++e) {
      WeightMatrix& w = out.emplace_back(all);
      w.name = fmt::format("{}[{}]", name, e);
      w.rows = rows;
      w.data = all.row(e * rows);
    }
    return out;
  }

 private:
  const GgufFile& f_;
};

std::string blk(int layer, std::string_view what, std::string_view kind = "weight") {
  return fmt::format("blk.{}.{}.{}", layer, what, kind);
}

void bind_attention(const Binder& b, const ModelSpec& s, int l, LayerWeights& lw) {
  const ArchTraits& a = *s.traits;
  lw.attn_norm = b.norm(blk(l, "attn_norm"), s.n_embd);
  lw.wq = b.matrix(blk(l, "attn_q"), s.q_dim(), s.n_embd);
  lw.wk = b.matrix(blk(l, "attn_k"), s.k_dim(), s.n_embd);
  lw.wv = b.matrix(blk(l, "attn_v"), s.v_dim(), s.n_embd);
  if (a.qkv_bias) {
    lw.bq = b.norm(blk(l, "attn_q", "bias"), s.q_dim());
    lw.bk = b.norm(blk(l, "attn_k", "bias"), s.k_dim());
    lw.bv = b.norm(blk(l, "attn_v", "bias"), s.v_dim());
  }
  if (a.qk_norm) {
    lw.q_norm = b.norm(blk(l, "attn_q_norm"), s.head_dim_k);
    lw.k_norm = b.norm(blk(l, "attn_k_norm"), s.head_dim_k);
  }
  lw.wo = b.matrix(blk(l, "attn_output"), s.n_embd, s.att_dim());
  if (a.post_norms) lw.post_attn_norm = b.norm(blk(l, "post_attention_norm"), s.n_embd);
}

void bind_ffn(const Binder& b, const ModelSpec& s, int l, LayerWeights& lw) {
  lw.ffn_norm = b.norm(blk(l, "ffn_norm"), s.n_embd);
  if (s.traits->ffn == FfnKind::moe_swiglu) {
    const int n = s.moe.n_expert, ff = s.moe.n_ff_exp;
    lw.router = b.matrix(blk(l, "ffn_gate_inp"), n, s.n_embd);
    const auto gate = b.experts(blk(l, "ffn_gate_exps"), ff, s.n_embd, n);
    const auto up = b.experts(blk(l, "ffn_up_exps"), ff, s.n_embd, n);
    const auto down = b.experts(blk(l, "ffn_down_exps"), s.n_embd, ff, n);
    for (size_t e = 0; e < static_cast<size_t>(n); ++e) {
      lw.experts.push_back({gate[e], up[e], down[e]});
    }
  } else {
    lw.ffn_gate = b.matrix(blk(l, "ffn_gate"), s.n_ff, s.n_embd);
    lw.ffn_up = b.matrix(blk(l, "ffn_up"), s.n_ff, s.n_embd);
    lw.ffn_down = b.matrix(blk(l, "ffn_down"), s.n_embd, s.n_ff);
  }
  if (s.traits->post_norms) lw.post_ffn_norm = b.norm(blk(l, "post_ffw_norm"), s.n_embd);
}

}  // namespace

uint64_t Weights::step_bytes() const {
  uint64_t b = output.bytes();
  for (const LayerWeights& l : layers) {
    b += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.ffn_gate.bytes() +
         l.ffn_up.bytes() + l.ffn_down.bytes() + l.router.bytes();
    if (!l.experts.empty()) {
      const ExpertWeights& e = l.experts[0];  // every expert has the same size
      b += static_cast<uint64_t>(experts_used) * (e.gate.bytes() + e.up.bytes() + e.down.bytes());
    }
  }
  return b;
}

Weights bind_weights(const GgufFile& file, ModelSpec& spec) {
  try {
    check_weight_types(file);  // every tensor's type before any is bound (or allocated)
  } catch (const Error& e) {
    fail("{}: {}", file.path(), e.what());
  }
  const Binder b(file);
  Weights w;
  w.token_embd = b.matrix("token_embd.weight", spec.n_vocab, spec.n_embd);
  for (int l = 0; l < spec.n_layers(); ++l) {
    LayerWeights& lw = w.layers.emplace_back();
    bind_attention(b, spec, l, lw);
    bind_ffn(b, spec, l, lw);
  }
  w.experts_used = spec.moe.n_expert > 0 ? spec.moe.n_expert_used : 0;
  w.output_norm = b.norm("output_norm.weight", spec.n_embd);
  // Models with tied embeddings (and llama.cpp conversions of them) may leave output.weight out.
  w.tied_output = b.find("output.weight") == nullptr;
  w.output = w.tied_output ? w.token_embd : b.matrix("output.weight", spec.n_vocab, spec.n_embd);
  if (b.find("rope_freqs.weight") != nullptr) {
    for (LayerSpec& layer : spec.layers) {
      layer.rope.freq_factors = b.vector("rope_freqs.weight", layer.rope.n_dims / 2);
    }
  }
  return w;
}

}  // namespace kvpack::model
