// Page keys for prefix reuse: a full page is identified by the hash of its parent page's key,
// its token ids and a salt naming everything that shapes its bytes (model and RoPE settings,
// per-layer formats, geometry, codec seed). Equal keys mean equal K/V, so the page can be shared.
// Keys are 64-bit xxHash3: a false match needs ~2^32 distinct pages in one cache to be likely.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kvpack/cache.h"

namespace kvpack::cache {

// The canonical text the cache salt hashes (also shown in diagnostics).
std::string salt_text(const CacheConfig& config);
// The salt of a cache: xxHash3 of salt_text().
uint64_t cache_salt(const CacheConfig& config);
// A sequence's salt: the cache's, mixed with the sequence's own tag (empty: the cache's salt).
uint64_t sequence_salt(uint64_t cache_salt, std::string_view tag);
// The key of one full page: tokens is the page's token ids, parent the previous page's key (0
// for the first page).
uint64_t page_key(uint64_t salt, uint64_t parent, std::span<const int32_t> tokens);
// The prefix index key of that page in page group g (PageLayout::groups): each group's page of
// the same tokens holds other layers, so the groups' keys differ.
uint64_t group_key(uint64_t key, size_t group);

}  // namespace kvpack::cache
