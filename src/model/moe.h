// Mixture-of-experts routing (Qwen3-MoE): which experts a token goes to and with what weights.
#pragma once

#include <cstdint>

namespace kvpack::model {

// Chooses k of the n experts for one token from its router logits [n]: softmax over all n, the
// k most probable (ties to the lower id), best first, with their probabilities renormalised to
// sum to 1. ids [k], weights [k]. Non-finite logits make every weight NaN (softmax's rule), so a
// broken router shows in the output instead of routing silently.
void route_experts(const float* logits, int n, int k, int32_t* ids, float* weights);

}  // namespace kvpack::model
