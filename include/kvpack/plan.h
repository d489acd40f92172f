// The memory planner: a model's attention shape (from a GGUF or a built-in preset), the K/V bytes
// per token a policy costs (from the format registry), and how much context or how many
// sessions fit a memory budget once the weights and a fixed overhead are paid for.
//
//   bytes/token  = sum over KV layers of kv_heads x (K head bytes + V head bytes per page) / P
//   KV(context)  = full-layer pages x floor(context / P)
//                + sliding-layer pages x min(floor(context / P), ceil(window / P))
//                + one unencoded f32 tail page per KV layer (the cache's newest < P tokens)
//   total        = weights + overhead + KV(context)
//
// P is the page size in tokens; head bytes per page include scales, norms and 64-byte
// alignment, so page padding is counted exactly. docs/cli.md (`kvpack plan`) has the details.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpack/format.h"
#include "model/model_spec.h"

namespace kvpack::plan {

// What the planner knows about a model: its description (model::ModelSpec, the one the engine
// runs: per-layer heads and sliding windows, head dims, contexts), read from a GGUF's metadata or
// from a preset by the same reader, plus where it came from and what its weights take.
struct ModelShape : model::ModelSpec {
  std::string source;  // "preset" or the GGUF path
  double params = 0;   // parameter count (every expert of a MoE model)
  uint64_t weight_bytes = 0;
  std::string weights_from;  // how weight_bytes was found, e.g. "8.19B params x 4.85 bits"
};

// Bits per weight when a preset's weights are sized: about what llama.cpp's Q4_K_M files take.
inline constexpr double kDefaultWeightBits = 4.85;

// A built-in model shape, from the model's public config (FACTS.md section 1). preset_shape()
// writes it as the metadata keys a GGUF of the model carries and reads them back with
// model::read_model_spec, so presets and files share one reader.
struct Preset {
  std::string_view name;     // lower case with hyphens: "qwen3-8b"
  std::string_view display;  // "Qwen3-8B"
  std::string_view arch;
  int layers;
  int q_heads;
  int kv_heads;
  int head_dim;
  int swa_period;  // 0: no layer slides; N: layer l slides unless l % N == N - 1 (Gemma)
  int window;      // sliding window in tokens (0 when swa_period is 0)
  int64_t native_context;
  int64_t max_context;  // with the RoPE scaling the model card documents (YaRN for Qwen)
  double params;
};

std::span<const Preset> presets();
// Throws Error("unknown preset 'x' (known: qwen3-8b, ...)").
const Preset& find_preset(std::string_view name);
// weight_bits in (0, 64]; weights = params x weight_bits / 8.
ModelShape preset_shape(const Preset& preset, double weight_bits = kDefaultWeightBits);

// The description model::read_model_spec() reads from a GGUF's metadata (any architecture in
// llama.cpp's key conventions), with weights sized from its tensor infos, never tensor data:
// the tensors' sizes, or params x weight_bits / 8 when weight_bits is given. Throws Error naming
// the file and key.
ModelShape gguf_shape(const std::string& path, std::optional<double> weight_bits = std::nullopt);

// Bytes of one session's K/V for a model, a policy and a page size.
struct KvFootprint {
  int page_tokens = 32;
  uint64_t full_page_bytes = 0;     // one page of K+V summed over the full-attention layers
  uint64_t sliding_page_bytes = 0;  // one page of K+V summed over the sliding layers
  int64_t sliding_pages = 0;        // encoded pages a sliding layer keeps: ceil(window / P)
  uint64_t tail_bytes = 0;          // one f32 page of K+V per KV layer, per session

  double bytes_per_token_full() const;
  double bytes_per_token_sliding() const;  // while the window fills; 0 afterwards
  // K/V bytes of one session holding `context` tokens: encoded pages plus the tail.
  uint64_t session_bytes(int64_t context) const;
  // Largest whole-page context whose session_bytes fit in `available`; -1 when unbounded
  // (every KV layer slides), 0 when not even the tail fits.
  int64_t max_context(uint64_t available) const;
};

// Throws Error naming the layer, role and format when the policy cannot serve the model.
KvFootprint kv_footprint(const ModelShape& model, const format::KVPolicy& policy,
                         int page_tokens = 32);

// A named memory size: a GPU or an Apple unified-memory Mac.
struct Device {
  std::string_view name;         // "rtx-4090", "mac-32gb"
  std::string_view description;  // "NVIDIA RTX 4090, 24 GiB"
  uint64_t memory;               // physical memory
  uint64_t usable;               // what a process may use for the model (OS reserve removed)
};

std::span<const Device> devices();

struct Budget {
  uint64_t bytes = 0;
  std::string label;  // "16.00 GiB" or "mac-32gb (21.33 GiB of 32.00 GiB)"
};

// "16GiB", "24GB", "512MiB", or a device name from devices(); throws Error naming the text.
Budget parse_budget(std::string_view text);

// What the fixed overhead stands for is documented at its definition in src/plan/plan.cpp and
// in docs/cli.md: runtime, compute buffers for a prefill chunk, logits, page tables.
inline constexpr uint64_t kDefaultOverhead = uint64_t{1} << 30;

struct PlanOptions {
  int page_tokens = 32;
  int64_t context = 0;  // 0: the model's native context
  uint64_t overhead = kDefaultOverhead;
  std::optional<Budget> budget;
};

// One model + policy against the options.
struct Plan {
  format::KVPolicy policy;
  KvFootprint kv;
  int64_t context = 0;
  uint64_t kv_bytes = 0;  // one session at `context`
  uint64_t weight_bytes = 0;
  uint64_t overhead_bytes = 0;
  uint64_t total_bytes = 0;  // weights + overhead + kv_bytes
  // With a budget only:
  std::optional<uint64_t> budget_bytes;
  int64_t max_context = 0;  // one session; -1: unbounded
  int64_t sessions = 0;     // sessions of `context` tokens that fit together
  int64_t headroom = 0;     // budget - total (negative when one session does not fit)
};

// Throws Error when the budget cannot hold the weights and the overhead, naming both sizes.
Plan make_plan(const ModelShape& model, const format::KVPolicy& policy, const PlanOptions& options);

// Memory left for K/V: budget - weights - overhead, or nullopt when that is not positive.
std::optional<uint64_t> kv_room(const ModelShape& model, uint64_t budget, uint64_t overhead);

}  // namespace kvpack::plan
