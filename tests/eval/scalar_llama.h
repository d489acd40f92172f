// A straightforward scalar evaluation of a llama model for the eval tests: plain loops in double
// over the dequantized weights, full causal attention over every earlier token (no cache, no
// kvpack kernels), the perplexity computed as llama.cpp's tool defines it. The engine's
// perplexity with an f32 cache must agree with it to 4 significant figures.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvpack/model.h"

namespace kvpack::eval::testing {

// Logits of every position of `tokens`: [tokens.size()][n_vocab]. Interleaved RoPE without
// scaling (what the tests' models use).
std::vector<std::vector<double>> scalar_logits(const model::Model& model,
                                               std::span<const int32_t> tokens);

// exp(mean NLL) over the second half of each chunk: chunk i is tokens [i c, (i + 1) c) with BOS
// first when bos >= 0; logits at c/2 .. c-2 predict the next token.
double scalar_perplexity(const model::Model& model, std::span<const int32_t> tokens,
                         int64_t context, int64_t chunks, int32_t bos);

}  // namespace kvpack::eval::testing
