// Internal: the prepared query of the integer-code K kernels (q8, q4, q4a, turbo4): each query
// row rounded to int8 with one f32 scale per group of channels, as llama.cpp quantizes q to
// q8_0 for its quantized-K dot products. Per-group integer dot products are then exact (int32,
// or f32 sums of integers below 2^24), and the rounding of q is the only error they add.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned.h"

namespace kvpack::attention::detail {

// Byte layout of one prepared row: [int8 codes, d (64-aligned)][f32 codes as floats, d]
// [f32 scale per group][int32 sum of codes per group].
struct IntQueryLayout {
  int d;
  int group;  // channels per scale

  int groups() const { return d / group; }
  size_t codes() const { return 0; }
  size_t floats() const { return round_up(static_cast<size_t>(d), kCacheLine); }
  size_t scales() const { return floats() + round_up(4 * static_cast<size_t>(d), kCacheLine); }
  size_t sums() const { return scales() + round_up(4 * static_cast<size_t>(groups()), kCacheLine); }
  size_t row_bytes() const {
    return sums() + round_up(4 * static_cast<size_t>(groups()), kCacheLine);
  }
};

// The view of one prepared row the kernels read.
struct IntQueryRow {
  const int8_t* codes = nullptr;  // [d]
  const float* fcodes = nullptr;  // [d] the same integers as f32 (portable kernels)
  const float* scale = nullptr;   // [groups]
  const int32_t* sum = nullptr;   // [groups]

  IntQueryRow() = default;
  IntQueryRow(const IntQueryLayout& l, const uint8_t* row)
      : codes(reinterpret_cast<const int8_t*>(row + l.codes())),
        fcodes(reinterpret_cast<const float*>(row + l.floats())),
        scale(reinterpret_cast<const float*>(row + l.scales())),
        sum(reinterpret_cast<const int32_t*>(row + l.sums())) {}
};

// Rounds q: [d] to int8 per group (scale = max |q| / 127 over the non-NaN channels, 0 for an
// all-zero group; code = q / scale clamped to +-127, rounded to nearest even; NaN codes are 0)
// into row. The best SIMD target's; quantize_query_reference is the scalar definition, and the
// two agree bit for bit.
void quantize_query(const IntQueryLayout& l, const float* q, uint8_t* row);
void quantize_query_reference(const IntQueryLayout& l, const float* q, uint8_t* row);

}  // namespace kvpack::attention::detail
