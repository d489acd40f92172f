// What the engine needs of a model's GGUF metadata: its shape (model_shape.h, read in llama.cpp's
// key conventions) as the forward pass runs it, plus RoPE, FFN width, norm epsilon and the
// vocabulary size. The architecture's row in arch.h says how the families differ; this struct
// holds the numbers.
#pragma once

#include <cstdint>
#include <string>

#include "model/arch.h"
#include "model/rope.h"

namespace kvpack::model {

class GgufFile;

struct HParams {
  const ArchTraits* arch = nullptr;
  std::string name;  // general.name, else the file name
  int n_layers = 0;
  int n_embd = 0;      // residual stream width
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // K/V heads (grouped-query attention: n_heads is a multiple)
  int head_dim_k = 0;  // attention.key_length, default n_embd / n_heads
  int head_dim_v = 0;  // attention.value_length, default head_dim_k
  int n_ff = 0;        // FFN hidden width
  int n_vocab = 0;     // rows of token_embd
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;  // attention.layer_norm_rms_epsilon
  // RoPE from metadata; freq_factors (llama3's rope_freqs tensor) are added with the weights.
  RopeConfig rope;

  int q_dim() const { return n_heads * head_dim_k; }     // width of Q
  int k_dim() const { return n_kv_heads * head_dim_k; }  // width of K
  int v_dim() const { return n_kv_heads * head_dim_v; }  // width of V
  int att_dim() const { return n_heads * head_dim_v; }   // width of the attention output
};

// Reads and checks the hyperparameters on top of read_model_shape(). Throws Error naming the file
// and the key for a missing or out-of-range value, and for what the forward pass does not run
// yet: an unsupported architecture, head counts that differ between layers, sliding-window
// layers. n_vocab comes from token_embd.weight's shape (tensor infos only; no tensor data).
HParams read_hparams(const GgufFile& file);

}  // namespace kvpack::model
