// Cache-line aligned heap buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace kvpack {

inline constexpr size_t kCacheLine = 64;

inline constexpr size_t round_up(size_t n, size_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A zero-initialized, 64-byte aligned array of n elements of a trivial type T.
template <typename T>
using AlignedArray = std::unique_ptr<T[], AlignedFree>;

template <typename T>
AlignedArray<T> make_aligned(size_t n) {
  const size_t bytes = round_up(n * sizeof(T) == 0 ? kCacheLine : n * sizeof(T), kCacheLine);
  void* p = std::aligned_alloc(kCacheLine, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return AlignedArray<T>(static_cast<T*>(p));
}

}  // namespace kvpack
