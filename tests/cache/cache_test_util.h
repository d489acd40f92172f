// Helpers shared by the cache tests: small configurations, K/V rows that depend only on the
// token prefix (as a model's do, so shared pages hold the right values for every holder), and
// reading a sequence back through its LayerView (pages decoded through the codecs, then the
// f32 tail).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "error_of.h"
#include "kvpack/cache.h"

namespace kvpack::cache::testing {

// Two layers, or one per entry of `windows` (each layer's attention window; 0 = full).
inline CacheConfig small_config(uint32_t n_pages, const std::string& policy = "k=f32,v=f32",
                                int page_tokens = 16, int hp_window = 0,
                                const std::vector<int>& windows = {}) {
  CacheConfig c;
  c.n_layers = windows.empty() ? 2 : static_cast<int>(windows.size());
  c.layer_window = windows;
  c.n_kv_heads = 2;
  c.head_dim_k = 8;
  c.head_dim_v = 16;
  c.page_tokens = page_tokens;
  c.policy = format::KVPolicy::parse(policy);
  c.n_pages = n_pages;
  c.hp_window = hp_window;
  c.salt = "test-model rope_theta=10000";
  return c;
}

// One token's K or V row set: [n_kv_heads][head_dim], a function of (layer, role, prefix key).
// Values are multiples of 1/16 in [-4, 4): exact in f32, f16 and bf16.
inline void token_rows(const CacheConfig& c, int layer, bool is_k, uint64_t prefix_key,
                       float* out) {
  const int d = is_k ? c.head_dim_k : c.head_dim_v;
  Rng rng(mix_seed(prefix_key, static_cast<uint64_t>(layer) * 2 + (is_k ? 0 : 1)));
  for (int i = 0; i < c.n_kv_heads * d; ++i) {
    out[i] = static_cast<float>(static_cast<int>(rng.below(128)) - 64) / 16.0f;
  }
}

// Prefix keys of a token run: key[i] identifies tokens [0, i].
inline std::vector<uint64_t> prefix_keys(const std::vector<int32_t>& tokens) {
  std::vector<uint64_t> keys(tokens.size());
  uint64_t k = 0x1234;
  for (size_t i = 0; i < tokens.size(); ++i) {
    k = mix_seed(k, static_cast<uint64_t>(static_cast<uint32_t>(tokens[i])));
    keys[i] = k;
  }
  return keys;
}

// The K and V rows of tokens [from, to) of `tokens` at one layer: [n][heads][d].
struct Rows {
  std::vector<float> k, v;
};
inline Rows rows_for(const CacheConfig& c, int layer, const std::vector<int32_t>& tokens,
                     size_t from, size_t to) {
  const std::vector<uint64_t> keys = prefix_keys(tokens);
  const size_t kw = static_cast<size_t>(c.n_kv_heads) * c.head_dim_k;
  const size_t vw = static_cast<size_t>(c.n_kv_heads) * c.head_dim_v;
  Rows r{std::vector<float>((to - from) * kw), std::vector<float>((to - from) * vw)};
  for (size_t t = from; t < to; ++t) {
    token_rows(c, layer, true, keys[t], r.k.data() + (t - from) * kw);
    token_rows(c, layer, false, keys[t], r.v.data() + (t - from) * vw);
  }
  return r;
}

// add_tokens(tokens[from, to)) then append their rows at every layer.
inline void extend(Cache& cache, SeqId seq, const std::vector<int32_t>& tokens, size_t from,
                   size_t to) {
  cache.add_tokens(seq, std::span<const int32_t>(tokens).subspan(from, to - from));
  for (int l = 0; l < cache.config().n_layers; ++l) {
    const Rows r = rows_for(cache.config(), l, tokens, from, to);
    cache.append(seq, l, r.k.data(), r.v.data(), static_cast<int>(to - from));
  }
}

// The whole sequence at one layer as attention sees it: [n][heads][d], pages decoded; tokens
// before view.first_token() (released behind a sliding window) read as zero.
inline Rows read_back(const LayerView& view) {
  const int H = view.n_kv_heads, P = view.page_tokens;
  const size_t n = static_cast<size_t>(view.n_tokens());
  Rows r{std::vector<float>(n * H * view.head_dim_k), std::vector<float>(n * H * view.head_dim_v)};
  for (int pass = 0; pass < 2; ++pass) {
    const bool is_k = pass == 0;
    const int d = is_k ? view.head_dim_k : view.head_dim_v;
    std::vector<float>& out = is_k ? r.k : r.v;
    std::vector<float> page(static_cast<size_t>(P) * d);  // [P][d]
    for (int h = 0; h < H; ++h) {
      for (size_t p = 0; p < view.page_ids.size(); ++p) {
        if (is_k)
          view.k_codec->decode(h, view.k_block(p, h), P, page.data());
        else
          view.v_codec->decode(h, view.v_block(p, h), P, page.data());
        for (int t = 0; t < P; ++t) {
          std::copy_n(page.data() + static_cast<size_t>(t) * d, d,
                      out.data() + (((view.first_page + p) * P + t) * H + h) * d);
        }
      }
      for (int t = 0; t < view.tail_tokens; ++t) {
        const float* row = is_k ? view.k_tail_row(h, t) : view.v_tail_row(h, t);
        std::copy_n(row, d, out.data() + ((view.encoded_tokens() + t) * H + h) * d);
      }
    }
  }
  return r;
}

using kvpack::testing::error_of;

inline std::vector<int32_t> iota_tokens(size_t n, int32_t first = 1000) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

}  // namespace kvpack::cache::testing
