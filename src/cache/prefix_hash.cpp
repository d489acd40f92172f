// Page keys for prefix reuse (see prefix_hash.h).
#include "cache/prefix_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"

namespace kvpack::cache {

std::string salt_text(const CacheConfig& config) {
  std::string text = fmt::format(
      "kvpack-cache-v1|producer={}|model_seed={}|layers={}|kv_heads={}|head_dim_k={}|"
      "head_dim_v={}|page_tokens={}|formats=",
      config.salt, config.model_seed, config.n_layers, config.n_kv_heads, config.head_dim_k,
      config.head_dim_v, config.page_tokens);
  for (int l = 0; l < config.n_layers; ++l) {
    const format::LayerFormats f = config.policy.layer(l, config.n_layers);
    text +=
        fmt::format("{}{}/{}", l == 0 ? "" : ",", format::info(f.k).name, format::info(f.v).name);
  }
  // Windows decide the page groups, so pages of different windows never meet (all-full
  // configurations keep the text they had before windows existed).
  const auto& w = config.layer_window;
  if (std::any_of(w.begin(), w.end(), [](int x) { return x != 0; })) {
    for (size_t l = 0; l < w.size(); ++l)
      text += fmt::format("{}{}", l == 0 ? "|windows=" : ",", w[l]);
  }
  return text;
}

uint64_t cache_salt(const CacheConfig& config) {
  const std::string text = salt_text(config);
  return XXH3_64bits(text.data(), text.size());
}

uint64_t sequence_salt(uint64_t cache_salt, std::string_view tag) {
  if (tag.empty()) return cache_salt;
  return XXH3_64bits_withSeed(tag.data(), tag.size(), cache_salt);
}

uint64_t page_key(uint64_t salt, uint64_t parent, std::span<const int32_t> tokens) {
  constexpr size_t kMaxTokens = 256;  // page_tokens' upper bound
  KVPACK_ASSERT(tokens.size() <= kMaxTokens, "page of {} tokens", tokens.size());
  uint8_t buf[sizeof(uint64_t) + kMaxTokens * sizeof(int32_t)];  // [parent | token ids]
  std::memcpy(buf, &parent, sizeof parent);
  std::memcpy(buf + sizeof parent, tokens.data(), tokens.size_bytes());
  return XXH3_64bits_withSeed(buf, sizeof parent + tokens.size_bytes(), salt);
}

uint64_t group_key(uint64_t key, size_t group) {
  if (group == 0) return key;
  return XXH3_64bits_withSeed(&key, sizeof key, static_cast<uint64_t>(group));
}

}  // namespace kvpack::cache
