// What a K/V policy costs in the cache, computed from the format registry the way the cache sizes
// its pages: each head's block of a page is the format's payload rounded up to 64 bytes, so
// padding is counted (it matters for small heads: a 2-bit key page of head dim 8 is padded by a
// third). Every eval report prices policies through these functions.
#pragma once

#include "kvpack/format.h"
#include "model/model_spec.h"

namespace kvpack::eval {

// Bytes one token takes in layer `layer`'s pages for one role in format `f`:
// n_kv_heads x head_bytes(head_dim, page_tokens) / page_tokens.
double role_bytes_per_token(const model::ModelSpec& hp, format::Role role, format::FormatId f,
                            int page_tokens);

// Bytes one token takes across every layer, K and V (equals Cache::page_bytes() / page_tokens).
double policy_bytes_per_token(const model::ModelSpec& hp, const format::KVPolicy& policy,
                              int page_tokens);

// K and V values one token stores across every layer: sum over layers of n_kv_heads x (dk + dv).
double values_per_token(const model::ModelSpec& hp);

// Average stored bits per value, padding included: 8 x bytes / values_per_token.
double bits_per_value(const model::ModelSpec& hp, double bytes_per_token);

// "q8/q4" for a uniform policy, the --kv text otherwise: the short name tables use.
std::string policy_label(const format::KVPolicy& policy);

}  // namespace kvpack::eval
