// Rotary position embedding: interleaved pairs (GPT-J / llama.cpp "norm", used by llama GGUFs)
// and NeoX halves (Qwen, Gemma), with linear, YaRN and per-dimension frequency-factor (llama3's
// rope_freqs tensor) scaling. Tables are computed once per model; apply() rotates in place.
#pragma once

#include <cstdint>
#include <vector>

namespace kvpack::model {

enum class RopeOrdering { interleaved, neox };
enum class RopeScaling { none, linear, yarn };

struct RopeConfig {
  RopeOrdering ordering = RopeOrdering::interleaved;
  int n_dims = 0;  // rotated dims (<= head dim; the rest pass through)
  double freq_base = 10000.0;
  RopeScaling scaling = RopeScaling::none;
  double scale_factor = 1.0;     // context extension factor (linear and YaRN)
  int64_t original_context = 0;  // YaRN: training context before extension
  double yarn_beta_fast = 32.0;
  double yarn_beta_slow = 1.0;
  double yarn_attn_factor = 1.0;
  std::vector<float> freq_factors;  // per pair divisor of the frequency (llama3), or empty

  bool operator==(const RopeConfig&) const = default;
};

class Rope {
 public:
  explicit Rope(RopeConfig config);
  const RopeConfig& config() const { return config_; }

  // Rotates x: [n_heads][head_dim] for position pos.
  void apply(float* x, int n_heads, int head_dim, int64_t pos) const;
  // Angle and magnitude of pair i at pos (exposed for tests).
  void pair_cos_sin(int64_t pos, int i, double* c, double* s) const;

 private:
  RopeConfig config_;
  std::vector<double> inv_freq_;  // [n_dims / 2]
  std::vector<double> yarn_mix_;  // [n_dims / 2] extrapolation share (YaRN), else empty
  double mscale_ = 1.0;
};

}  // namespace kvpack::model
