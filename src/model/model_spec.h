// The one description of a model, read by model loading, weight binding, the forward pass, the
// planner and eval alike: the architecture's row (arch.h), per-layer specs (heads, sliding window,
// RoPE, attention scale and softcap) and the model-wide numbers. Built from a GGUF's metadata in
// llama.cpp's key conventions ({arch}.block_count, {arch}.attention.sliding_window, ...) by
// read_model_spec(); the planner's presets are written as the same keys and read the same way
// (src/plan/presets.cpp), so a preset and a GGUF of that model describe it identically.
//
// Metadata only (tensor infos for the vocabulary size, never tensor data), and any architecture
// whose keys are present: the planner sizes every llama.cpp-style model from this. What the
// engine additionally needs to run a model is checked by check_runnable().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/arch.h"
#include "model/rope.h"

namespace kvpack::model {

class GgufFile;

// Bounds on metadata values, far above any real model's; they keep sizes and products in range.
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 65536;
inline constexpr int64_t kMaxHeadDim = 65536;
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;  // embedding and FFN widths, vocabulary
inline constexpr int64_t kMaxContext = int64_t{1} << 40;
inline constexpr int64_t kMaxExperts = 4096;

// One transformer layer's attention.
struct LayerSpec {
  int q_heads = 0;
  int kv_heads = 0;     // 0: the layer holds no K/V (e.g. a recurrent layer)
  int64_t window = 0;   // sliding: a query sees itself and the window - 1 tokens before it; 0: all
  RopeConfig rope;      // the layer kind's RoPE (Gemma 3: another base for sliding layers)
  float att_scale = 0;  // multiplies q.k; 0: 1/sqrt(head_dim_k) (attention::Params' convention)
  float att_softcap = 0;  // softcap * tanh(logit / softcap) on attention logits; 0: none

  bool sliding() const { return window > 0; }
  bool operator==(const LayerSpec&) const = default;
};

// A mixture-of-experts FFN: n_expert SwiGLU experts of width n_ff_exp, n_expert_used per token.
struct MoeSpec {
  int n_expert = 0;  // 0: a dense FFN
  int n_expert_used = 0;
  int n_ff_exp = 0;
  bool operator==(const MoeSpec&) const = default;
};

// The sliding pattern of a period N (Gemma's, also llama.cpp's sliding_window_pattern): layer l
// slides unless l % N == N - 1; period 0: no layer slides.
inline bool slides(int layer, int64_t period) {
  return period > 0 && layer % period != period - 1;
}

struct ModelSpec {
  std::string arch;                    // general.architecture
  const ArchTraits* traits = nullptr;  // its row in arch.h; nullptr when kvpack does not know it
  std::string name;                    // general.name, else the file name
  std::vector<LayerSpec> layers;       // [block_count]
  int n_embd = 0;                      // embedding_length; 0 when absent (shape-only files)
  int head_dim_k = 0;                  // attention.key_length, default n_embd / head_count
  int head_dim_v = 0;                  // attention.value_length, default head_dim_k
  int n_ff = 0;                        // feed_forward_length (dense FFN); 0 when absent
  MoeSpec moe;                         // expert_count, expert_used_count, ...
  int n_vocab = 0;                     // rows of token_embd.weight; 0 without tensors
  float norm_eps = 1e-5f;              // attention.layer_norm_rms_epsilon
  float embed_scale = 1;               // embeddings are multiplied by this (Gemma: sqrt(n_embd))
  float final_softcap = 0;             // cap * tanh(logit / cap) on the output logits; 0: none
  int64_t n_ctx_train = 0;             // context_length
  // RoPE context scaling as the metadata states it: rope.scaling.type ("linear" for the older
  // rope.scale_linear; "" for none), its factor (1 to 1024; 1 when unset, which llama.cpp writes
  // as 0) and rope.scaling.original_context_length (default n_ctx_train).
  std::string rope_scaling;
  double rope_factor = 1;
  int64_t rope_original_context = 0;
  // The context the model was trained for and the longest it supports: YaRN stretches the
  // original context by its factor; otherwise both are n_ctx_train.
  int64_t native_context = 0;
  int64_t max_context = 0;

  int n_layers() const { return static_cast<int>(layers.size()); }
  int kv_layers() const;       // layers holding K/V
  int sliding_layers() const;  // KV layers that slide
  int64_t window() const;      // the widest sliding window; 0 when no KV layer slides
  // The most query / K/V heads of any layer: the engine runs models whose layers all have these
  // (check_runnable), so they size its buffers.
  int n_heads() const;
  int n_kv_heads() const;
  int q_dim() const { return n_heads() * head_dim_k; }     // width of Q
  int k_dim() const { return n_kv_heads() * head_dim_k; }  // width of K
  int v_dim() const { return n_kv_heads() * head_dim_v; }  // width of V
  int att_dim() const { return n_heads() * head_dim_v; }   // width of the attention output
  // The FFN's hidden width per token: n_ff, or n_ff_exp for a mixture of experts.
  int ffn_width() const { return moe.n_expert > 0 ? moe.n_ff_exp : n_ff; }
  // "8" when every KV layer has the same count, else "4-8".
  std::string q_heads_text() const;
  std::string kv_heads_text() const;
};

// Reads the description from {arch}.* keys: block_count, attention.head_count(_kv) (scalars or
// per-layer arrays; without head_count_kv every query head has its own K/V), key_length /
// value_length, the sliding pattern ({arch}.attention.sliding_window_pattern as a period or a
// per-layer bool array, else the architecture's period) and window, context_length,
// rope.* (dimension_count, freq_base, freq_base_swa, scaling), layer_norm_rms_epsilon,
// softcaps, feed_forward_length and expert counts; n_vocab from token_embd.weight's shape.
// Throws Error naming the file and the key for anything missing or out of range, and when no
// layer holds K/V.
ModelSpec read_model_spec(const GgufFile& file);

// read_model_spec() for the engine: the architecture first (an unknown or unsupported one is the
// clearest message for its file), then the description, then what the forward pass needs of it.
// Throws Error naming the file and the key or tensor for what kvpack cannot run yet: head counts
// that differ between layers, query heads that are not a multiple of the K/V heads, a missing
// embedding or FFN width (or FFN widths that differ between layers), expert counts out of range,
// an unsupported RoPE scaling, and no tensors (a vocab-only file) or no token_embd.weight of
// shape [n_embd, n_vocab].
ModelSpec read_runnable_spec(const GgufFile& file);

}  // namespace kvpack::model
