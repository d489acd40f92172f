// Next-token sampling: greedy, or the llama.cpp-style chain repetition penalty -> top-k ->
// top-p -> min-p -> temperature -> draw, with a seeded generator so runs reproduce.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/rng.h"

namespace kvpack::model {

// llama.cpp's meanings throughout, so its command lines carry over.
struct SamplerConfig {
  float temperature = 0.8f;     // finite; <= 0: greedy (argmax, ties to the lowest id)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // 0..1; 1: off (0 keeps the most likely token alone)
  float min_p = 0.05f;          // 0..1; 0: off; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.0f;  // finite, > 0; 1: off; divides positive logits (multiplies
                                // negative ones)
  int repeat_last_n = 64;       // recent tokens the penalty looks at; 0: off, -1: all of them
  uint64_t seed = 0;

  // Throws Error naming the flag (--temp, --top-p, ...) of a value outside the ranges above.
  void validate() const;
};

class Sampler {
 public:
  // Validates the config (Error naming the bad value).
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

// argmax with ties to the lowest index; NaN logits are skipped (Error when all are NaN, as
// from a model with broken weights).
int32_t argmax(std::span<const float> logits);

}  // namespace kvpack::model
