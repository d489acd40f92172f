// The model's tensors bound by llama.cpp's names, checked against the model description: the
// tensors every architecture has, and those its row in arch.h asks for (Q/K/V biases, Q/K norms,
// post norms, experts). Matrices are views into the memory-mapped GGUF (no copy); the small norm
// and bias vectors are dequantized to f32.
#pragma once

#include <string>
#include <vector>

#include "model/model_spec.h"
#include "model/weights.h"

namespace kvpack::model {

class GgufFile;

// A norm's weight vector (or a bias), dequantized to f32, with its tensor name (traces, errors).
struct NormWeights {
  std::string name;
  std::vector<float> w;  // (n); empty when the architecture has no such tensor
  bool empty() const { return w.empty(); }
};

// One expert of a mixture: a SwiGLU FFN of width n_ff_exp, a slice of the blk.N.ffn_*_exps
// tensors (ggml shape [cols, rows, n_expert]).
struct ExpertWeights {
  WeightMatrix gate;  // (n_ff_exp, n_embd)
  WeightMatrix up;    // (n_ff_exp, n_embd)
  WeightMatrix down;  // (n_embd, n_ff_exp)
};

// One transformer block. Matrix shapes are (rows = outputs, cols = inputs); tensors an
// architecture does not have stay empty.
struct LayerWeights {
  NormWeights attn_norm;       // (n_embd)            blk.N.attn_norm.weight
  WeightMatrix wq;             // (q_dim, n_embd)     blk.N.attn_q.weight
  WeightMatrix wk;             // (k_dim, n_embd)     blk.N.attn_k.weight
  WeightMatrix wv;             // (v_dim, n_embd)     blk.N.attn_v.weight
  NormWeights bq, bk, bv;      // (q_dim), (k_dim), (v_dim)  blk.N.attn_{q,k,v}.bias (Qwen 2)
  NormWeights q_norm, k_norm;  // (head_dim_k)        blk.N.attn_{q,k}_norm.weight, per head
  WeightMatrix wo;             // (n_embd, att_dim)   blk.N.attn_output.weight
  NormWeights post_attn_norm;  // (n_embd)            blk.N.post_attention_norm.weight (Gemma)
  NormWeights ffn_norm;        // (n_embd)            blk.N.ffn_norm.weight
  WeightMatrix ffn_gate;       // (n_ff, n_embd)      blk.N.ffn_gate.weight (dense FFN)
  WeightMatrix ffn_up;         // (n_ff, n_embd)      blk.N.ffn_up.weight
  WeightMatrix ffn_down;       // (n_embd, n_ff)      blk.N.ffn_down.weight
  WeightMatrix router;         // (n_expert, n_embd)  blk.N.ffn_gate_inp.weight (MoE)
  std::vector<ExpertWeights> experts;  // (n_expert)  blk.N.ffn_{gate,up,down}_exps.weight
  NormWeights post_ffn_norm;           // (n_embd)            blk.N.post_ffw_norm.weight (Gemma)
};

struct Weights {
  WeightMatrix token_embd;           // (n_vocab, n_embd)  token_embd.weight
  std::vector<LayerWeights> layers;  // (n_layers)
  NormWeights output_norm;           // (n_embd)           output_norm.weight
  WeightMatrix output;               // (n_vocab, n_embd)  output.weight, else token_embd (tied)
  bool tied_output = false;
  int experts_used = 0;  // experts a token reads per MoE layer

  // Bytes of every matrix one decode step reads (embedding row excluded; of a mixture, the
  // router and experts_used experts): the weight-side floor of a step's memory traffic.
  uint64_t step_bytes() const;
};

// Binds every tensor the architecture needs. Throws Error naming the file and the tensor for a
// missing tensor, a wrong shape or an unsupported type. Sets every layer's rope.freq_factors from
// rope_freqs.weight (Llama 3) when present.
Weights bind_weights(const GgufFile& file, ModelSpec& spec);

}  // namespace kvpack::model
