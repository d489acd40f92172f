// The inputs of every attention layer over one text, captured from a forward pass with an f32
// cache (ForwardOptions::trace), and the attention outputs those exact inputs give under any K/V
// policy. Feeding every policy the same q/k/v isolates each layer's own error from the error
// earlier layers pass on.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "kvpack/format.h"
#include "kvpack/model.h"

namespace kvpack::eval {

struct AttentionCapture {
  std::vector<int32_t> tokens;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim_k = 0;
  int head_dim_v = 0;
  int page_tokens = 32;
  // Per layer, rows in token order (RoPE applied to q and k, as the cache receives them):
  std::vector<std::vector<float>> q;  // [layer] (tokens, n_heads, head_dim_k)
  std::vector<std::vector<float>> k;  // [layer] (tokens, n_kv_heads, head_dim_k)
  std::vector<std::vector<float>> v;  // [layer] (tokens, n_kv_heads, head_dim_v)

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
};

// Runs the model over `tokens` with an f32 cache in chunks of `batch` and keeps every layer's
// q (blk.N.q_rope), k (blk.N.k_rope) and v (blk.N.attn_v.weight).
AttentionCapture capture_attention(const model::Model& model, std::span<const int32_t> tokens,
                                   int batch, int page_tokens, ThreadPool& pool);

// A cache holding the captured K and V of every layer in `policy`'s formats (one sequence, all
// tokens), and causal attention of all captured queries over it with the engine's prefill
// kernels, as the forward pass runs them.
class PolicyAttention {
 public:
  PolicyAttention(const model::Model& model, const AttentionCapture& capture,
                  const format::KVPolicy& policy, ThreadPool& pool);
  ~PolicyAttention();
  PolicyAttention(const PolicyAttention&) = delete;
  PolicyAttention& operator=(const PolicyAttention&) = delete;

  // Attention output of one layer: (tokens, n_heads, head_dim_v).
  std::vector<float> output(int layer);
  cache::LayerView view(int layer) const;

 private:
  const AttentionCapture& capture_;
  ThreadPool& pool_;
  std::unique_ptr<cache::Cache> cache_;
  cache::SeqId seq_ = 0;
  attention::Workspace ws_;
};

// The K-only and V-only variants of a policy: its K formats with f32 values, and f32 keys with
// its V formats, layer by layer.
format::KVPolicy keys_only(const format::KVPolicy& policy, int n_layers);
format::KVPolicy values_only(const format::KVPolicy& policy, int n_layers);

}  // namespace kvpack::eval
