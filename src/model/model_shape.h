// A model's shape as its GGUF metadata states it, in llama.cpp's key conventions for {arch} =
// general.architecture: layers, per-layer query and K/V heads, head dims, sliding-window layers,
// context and RoPE context scaling. Metadata only (no tensors), and any architecture whose keys
// are present: the planner sizes every llama.cpp-style model from this, and the engine
// (read_hparams) builds on it and refuses what it cannot run yet.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/arch.h"

namespace kvpack::model {

class GgufFile;

// Bounds on metadata values, far above any real model's; they keep sizes and products in range.
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHeads = 65536;
inline constexpr int64_t kMaxHeadDim = 65536;
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;  // embedding and FFN widths, vocabulary
inline constexpr int64_t kMaxContext = int64_t{1} << 40;

// Attention geometry of one transformer layer.
struct LayerShape {
  int q_heads = 0;
  int kv_heads = 0;      // 0: the layer holds no K/V (e.g. a recurrent layer)
  bool sliding = false;  // attends to (and keeps) only the last `window` tokens
  bool operator==(const LayerShape&) const = default;
};

// The sliding pattern of a period N (Gemma's, also llama.cpp's sliding_window_pattern): layer l
// slides unless l % N == N - 1; period 0: no layer slides.
inline bool slides(int layer, int64_t period) {
  return period > 0 && layer % period != period - 1;
}

// Layers holding K/V, and those of them that slide.
int kv_layers(std::span<const LayerShape> layers);
int sliding_layers(std::span<const LayerShape> layers);

struct ModelShape {
  std::string arch;                    // general.architecture
  const ArchTraits* traits = nullptr;  // its row in arch.h; nullptr when kvpack does not know it
  std::string name;                    // general.name, else the file name
  std::vector<LayerShape> layers;      // [block_count]
  int n_embd = 0;                      // embedding_length; 0 when absent
  int head_dim_k = 0;                  // attention.key_length, default n_embd / head_count
  int head_dim_v = 0;                  // attention.value_length, default head_dim_k
  int64_t window = 0;                  // attention.sliding_window; 0 when no layer slides
  int64_t n_ctx_train = 0;             // context_length
  // RoPE context scaling: rope.scaling.type ("linear" for the older rope.scale_linear; "" for
  // none), its factor (1 to 1024; 1 when unset, which llama.cpp writes as 0) and
  // rope.scaling.original_context_length (default n_ctx_train).
  std::string rope_scaling;
  double rope_factor = 1;
  int64_t rope_original_context = 0;
  // The context the model was trained for and the longest it supports: YaRN stretches the
  // original context by its factor; otherwise both are n_ctx_train.
  int64_t native_context = 0;
  int64_t max_context = 0;

  int n_layers() const { return static_cast<int>(layers.size()); }
};

// Reads {arch}.block_count, attention.head_count(_kv) (scalars or per-layer arrays; without
// head_count_kv every query head has its own K/V), key_length / value_length, context_length,
// rope.scaling.*, sliding_window and the sliding pattern: {arch}.attention.sliding_window_pattern
// as a period N (layer l slides unless l % N == N - 1) or a per-layer bool array, else the
// architecture's period in arch.h (Gemma 2: 2, Gemma 3: 6). Throws Error naming the file and the
// key for anything missing or out of range, and when no layer holds K/V.
ModelShape read_model_shape(const GgufFile& file);

}  // namespace kvpack::model
