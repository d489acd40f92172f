// Next-token sampling: greedy, or the llama.cpp-style chain repetition penalty -> top-k ->
// top-p -> min-p -> temperature -> draw, with a seeded generator so runs reproduce.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/rng.h"

namespace kvpack::model {

struct SamplerConfig {
  float temperature = 0.8f;     // <= 0: greedy (argmax, ties to the lowest id)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; divides positive logits (multiplies negative ones)
  int repeat_last_n = 64;       // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& config);
  // Picks a token from logits [n_vocab]; history holds the tokens so far (for the penalty).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
  Rng rng_;
  std::vector<float> work_;  // [n_vocab] penalised logits
  std::vector<std::pair<float, int32_t>> candidates_;
};

// argmax with ties to the lowest index.
int32_t argmax(std::span<const float> logits);

}  // namespace kvpack::model
