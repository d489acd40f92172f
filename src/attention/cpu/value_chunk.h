// Internal: what the value kernels of every target share (cpu/value_kernels.cpp and its
// per-target tile headers): the code kinds, one head's V blocks in a chunk of pages, and the
// prefetch schedule of a block's tiles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "attention/prefetch.h"
#include "format/planes.h"

namespace kvpack::attention::detail {

constexpr int kValueRows = 4;      // query rows per block of the value kernels (register tiles)
constexpr int kValueGroups = 8;    // scale groups per head: d <= 256 at 32 channels per group
constexpr int kValueTokens = 256;  // tokens per chunk (kChunkTokens, or one page of up to 256)
constexpr int kValuePages = 8;     // pages per chunk (128 tokens of 16-token pages)

enum class VCode { q8, q4, q4a, turbo2, turbo3, turbo4 };

template <VCode C>
constexpr bool kTurbo = C == VCode::turbo2 || C == VCode::turbo3 || C == VCode::turbo4;
// 2-bit plane codes (turbo2; turbo3 adds a 1-bit plane of bit 2): 64 channels per 64-byte line.
template <VCode C>
constexpr bool kTwoBit = C == VCode::turbo2 || C == VCode::turbo3;
// Bits per code of the format's first (or only) value plane (format/planes.h).
template <VCode C>
constexpr int kPlaneBits = C == VCode::q8 ? 8
                           : kTwoBit<C>   ? 2
                                          : 4;

// Group of channel j: 32-channel groups, or one group (turbo).
template <VCode C>
constexpr int GroupOf(int j) {
  return kTurbo<C> ? 0 : j / 32;
}

// Where a V block's fields sit (from format::BlockLayout): its codes, its per-token factors
// a[G][T] (steps, or turbo's norms) and q4a's mins (kNone: none).
struct ValueOffsets {
  static constexpr size_t kNone = static_cast<size_t>(-1);
  size_t codes;
  size_t units;
  size_t mins;
};

// Where the 8 channels from 8 i sit in a page's value planes (the same in every page): byte
// offsets of token quad 0's 32-byte lines and their bit positions, in the first plane and in
// turbo3's 1-bit plane of code bit 2. Filled once per kernel call: each offset takes integer
// divisions, which per page and tile cost turbo3's AVX2 value kernel 8% at head dim 64.
struct TileLines {
  uint32_t low, high;
  int low_shift, high_shift;
};

template <VCode C>
void FillTileLines(int d, int T, TileLines* out) {
  for (int j0 = 0; j0 < d; j0 += 8) {
    TileLines& l = out[j0 / 8];
    l.low = static_cast<uint32_t>(format::value_plane_byte(d, kPlaneBits<C>, 0, j0, &l.low_shift));
    l.high = 0;
    l.high_shift = 0;
    if constexpr (C == VCode::turbo3) {
      const size_t plane = static_cast<size_t>((T + 3) / 4 * 4) * d / 4;
      l.high = static_cast<uint32_t>(plane + format::value_plane_byte(d, 1, 0, j0, &l.high_shift));
    }
  }
}

// One head's V blocks in a chunk as the kernels read them: token c = page * T + t.
struct ValueChunk {
  const uint8_t* codes[kValuePages];  // per page: its codes (token quads)
  int pages;
  int T;
  int d;
  const int8_t* table;     // 4-bit: element of each index (int8, VNNI)
  const int32_t* itable;   // 4-bit: the same as int32 (portable)
  const float* ftable;     // 4-bit: element of each index in f32 (exact-weights variant)
  float post;              // multiplies every page sum (turbo4: the int8 table's scale)
  const TileLines* lines;  // per 8 channels: d / 8 entries (the AVX2 tiles read them)
};

// Issues the block's prefetches a tile at a time (before each tile's loop, which then holds no
// call or branch that would make the compiler shuffle its accumulators between registers).
class TilePrefetch {
 public:
  TilePrefetch(Prefetcher* pf, size_t bytes, int tiles)
      : n_(pf ? pf->take_lines(bytes, lines_, kMax) : 0), tiles_(tiles) {}
  void before_tile() {
    const int end = static_cast<int>(static_cast<int64_t>(n_) * ++tile_ / tiles_);
    for (; next_ < end; ++next_) __builtin_prefetch(lines_[next_], 0, 3);
  }

 private:
  static constexpr int kMax = 512;
  const uint8_t* lines_[kMax];
  int n_;
  int tiles_;
  int tile_ = 0;
  int next_ = 0;
};

}  // namespace kvpack::attention::detail
