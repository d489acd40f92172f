// Internal: the configuration checks the cache and the page arithmetic share (layout.cpp).
#pragma once

#include "kvpack/cache.h"

namespace kvpack::cache {

// The longest window (attention or high-precision) a configuration may name, in tokens.
inline constexpr int kMaxWindow = 1 << 30;

// Throws Error naming the first bad field of a cache configuration.
void validate_config(const CacheConfig& config);

}  // namespace kvpack::cache
