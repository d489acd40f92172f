// Model architectures as one table: where the transformer families differ (RoPE ordering, biases,
// extra norms, FFN kind, embedding scale, softcaps, query scale, sliding pattern, RoPE of the
// sliding layers), each is a column, and each architecture one row. The model description
// (model_spec.h), weight binding, the forward pass and the planner's presets read the row instead
// of testing architecture names. `supported` marks the rows the forward pass runs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "model/rope.h"

namespace kvpack::model {

// The feed-forward block: y = W_down (act(W_gate h) * W_up h), or a mixture of such experts.
enum class FfnKind {
  swiglu,     // act = SiLU (Llama, Qwen)
  geglu,      // act = GELU, tanh approximation (Gemma)
  moe_swiglu  // softmax router over SwiGLU experts, top-k renormalised, no shared expert
              // (Qwen3-MoE)
};

struct ArchTraits {
  std::string_view name;  // general.architecture
  bool supported;         // the forward pass implements every column below for this row
  RopeOrdering rope;      // interleaved pairs (llama) or NeoX halves
  bool qkv_bias;          // blk.N.attn_{q,k,v}.bias (Qwen 2)
  bool qk_norm;           // RMSNorm on each head's q and k before RoPE (Qwen 3, Gemma 3)
  bool post_norms;        // RMSNorm on the attention and FFN outputs before the residual (Gemma)
  bool embed_scale;       // embeddings multiplied by sqrt(n_embd) (Gemma)
  FfnKind ffn;
  // Softcaps when the metadata ({arch}.attn_logit_softcapping, {arch}.final_logit_softcapping)
  // has none: cap * tanh(x / cap) on attention logits and on the output logits; 0: none.
  float attn_softcap;
  float final_softcap;
  // Sliding layers: layer l slides unless l % period == period - 1 (0: none slides), with this
  // window when {arch}.attention.sliding_window is absent (0: then no layer slides, as llama.cpp
  // reads Gemma 3 files without the key).
  int swa_period;
  int64_t swa_window;
  // RoPE of the sliding layers: this base when {arch}.rope.freq_base_swa is absent (0: the
  // global base), and whether they leave out the context scaling (Gemma 3 scales only its global
  // layers).
  double swa_rope_base;
  bool swa_rope_unscaled;
  // Queries are scaled by 1/sqrt(n_embd / n_head) instead of 1/sqrt(head_dim) in models of this
  // many layers (0: never): Gemma's rule for its 27B sizes, as llama.cpp applies it.
  int query_scale_embd_layers;
};

// Every architecture kvpack knows, supported or not.
std::span<const ArchTraits> all_architectures();
// The row for `name`, supported or not; nullptr for an architecture kvpack does not know.
const ArchTraits* find_architecture(std::string_view name);
// The row for `name`; throws Error for a known row that is not supported yet ("architecture
// 'x' is not supported yet (supported: llama, ...)") and for an unknown name. `source` (a file
// name) prefixes the message.
const ArchTraits& require_architecture(std::string_view name, std::string_view source);
// "llama, qwen2, ...": the names of the supported rows, for messages.
std::string supported_architectures();

}  // namespace kvpack::model
