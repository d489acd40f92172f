// The model's tensors bound by llama.cpp's names, checked against the hyperparameters. Matrices
// are views into the memory-mapped GGUF (no copy); the small norm vectors are dequantized to f32.
#pragma once

#include <string>
#include <vector>

#include "model/hparams.h"
#include "model/weights.h"

namespace kvpack::model {

class GgufFile;

// An RMSNorm's weight vector, dequantized to f32, with its tensor name (traces, errors).
struct NormWeights {
  std::string name;
  std::vector<float> w;  // (n_embd)
};

// One transformer block. Matrix shapes are (rows = outputs, cols = inputs).
struct LayerWeights {
  NormWeights attn_norm;  // (n_embd)              blk.N.attn_norm.weight
  WeightMatrix wq;        // (q_dim, n_embd)       blk.N.attn_q.weight
  WeightMatrix wk;        // (k_dim, n_embd)       blk.N.attn_k.weight
  WeightMatrix wv;        // (v_dim, n_embd)       blk.N.attn_v.weight
  WeightMatrix wo;        // (n_embd, att_dim)     blk.N.attn_output.weight
  NormWeights ffn_norm;   // (n_embd)              blk.N.ffn_norm.weight
  WeightMatrix ffn_gate;  // (n_ff, n_embd)        blk.N.ffn_gate.weight
  WeightMatrix ffn_up;    // (n_ff, n_embd)        blk.N.ffn_up.weight
  WeightMatrix ffn_down;  // (n_embd, n_ff)        blk.N.ffn_down.weight
};

struct Weights {
  WeightMatrix token_embd;           // (n_vocab, n_embd)  token_embd.weight
  std::vector<LayerWeights> layers;  // (n_layers)
  NormWeights output_norm;           // (n_embd)           output_norm.weight
  WeightMatrix output;               // (n_vocab, n_embd)  output.weight, else token_embd (tied)
  bool tied_output = false;

  // Bytes of every matrix one decode step reads (embedding row excluded): the weight-side floor
  // of a step's memory traffic.
  uint64_t step_bytes() const;
};

// Binds every tensor the architecture needs. Throws Error naming the file and the tensor for a
// missing tensor, a wrong shape or an unsupported type. Sets hp.rope.freq_factors from
// rope_freqs.weight (Llama 3) when present.
Weights bind_weights(const GgufFile& file, HParams& hp);

}  // namespace kvpack::model
