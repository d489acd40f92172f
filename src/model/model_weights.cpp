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
      fail("{}: {}", f_.path(), e.message());
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

 private:
  const GgufFile& f_;
};

std::string blk(int layer, std::string_view what) {
  return fmt::format("blk.{}.{}.weight", layer, what);
}

// A file whose metadata counts fewer blocks than its tensors hold (blk.N.* with N at or past
// the count) is refused: running it would silently skip the extra layers.
void check_no_extra_layers(const GgufFile& f, int n_layers) {
  for (const GgufTensor& t : f.tensors()) {
    if (t.name.rfind("blk.", 0) != 0) continue;
    int64_t layer = 0;
    size_t i = 4;
    for (; i < t.name.size() && i < 14 && t.name[i] >= '0' && t.name[i] <= '9'; ++i) {
      layer = layer * 10 + (t.name[i] - '0');
    }
    if (i == 4 || i >= t.name.size() || t.name[i] != '.' || layer < n_layers) continue;
    fail(
        "{}: tensor '{}' belongs to layer {}, but the metadata says the model has {} layers "
        "(block_count)",
        f.path(), t.name, layer, n_layers);
  }
}

}  // namespace

uint64_t Weights::step_bytes() const {
  uint64_t b = output.bytes();
  for (const LayerWeights& l : layers) {
    b += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.ffn_gate.bytes() +
         l.ffn_up.bytes() + l.ffn_down.bytes();
  }
  return b;
}

Weights bind_weights(const GgufFile& file, HParams& hp) {
  check_no_extra_layers(file, hp.n_layers);
  const Binder b(file);
  Weights w;
  w.token_embd = b.matrix("token_embd.weight", hp.n_vocab, hp.n_embd);
  for (int l = 0; l < hp.n_layers; ++l) {
    LayerWeights& lw = w.layers.emplace_back();
    lw.attn_norm = b.norm(blk(l, "attn_norm"), hp.n_embd);
    lw.wq = b.matrix(blk(l, "attn_q"), hp.q_dim(), hp.n_embd);
    lw.wk = b.matrix(blk(l, "attn_k"), hp.k_dim(), hp.n_embd);
    lw.wv = b.matrix(blk(l, "attn_v"), hp.v_dim(), hp.n_embd);
    lw.wo = b.matrix(blk(l, "attn_output"), hp.n_embd, hp.att_dim());
    lw.ffn_norm = b.norm(blk(l, "ffn_norm"), hp.n_embd);
    lw.ffn_gate = b.matrix(blk(l, "ffn_gate"), hp.n_ff, hp.n_embd);
    lw.ffn_up = b.matrix(blk(l, "ffn_up"), hp.n_ff, hp.n_embd);
    lw.ffn_down = b.matrix(blk(l, "ffn_down"), hp.n_embd, hp.n_ff);
  }
  w.output_norm = b.norm("output_norm.weight", hp.n_embd);
  // Models with tied embeddings (and llama.cpp conversions of them) may leave output.weight out.
  w.tied_output = b.find("output.weight") == nullptr;
  w.output = w.tied_output ? w.token_embd : b.matrix("output.weight", hp.n_vocab, hp.n_embd);
  if (b.find("rope_freqs.weight") != nullptr) {
    hp.rope.freq_factors = b.vector("rope_freqs.weight", hp.rope.n_dims / 2);
  }
  return w;
}

}  // namespace kvpack::model
