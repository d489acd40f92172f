// Bit planes for int8 dot-product kernels (docs/formats.md): where a p-bit value (p = 1, 2, 4)
// of channel j of token t sits. Instructions like x86 VPDPBUSD multiply 4 bytes per 32-bit lane,
// so both arrangements put 4 bytes of one lane side by side and 16 lanes in a 64-byte line:
//   key planes (a lane is one token): lines of C = 32/p channels, [lines][T][4] bytes; channel
//     C*o + c of token t is in byte o*4T + t*B + c % B, value k = c / B, B = w*p/8 bytes per
//     token (w: the line's width, C or what remains of d in the last line);
//   value planes (token quads: a lane is one channel slot, its 4 bytes 4 tokens): blocks of
//     C = 128/p channels, [T4/4][d*p/8][4] bytes; channel C*b + c of token t is in byte
//     ((t/4) * (d*p/8) + 16b + c % L) * 4 + t % 4, value k = c / L, L = w*p/8 lanes.
// Value k of a byte sits at bits [k*p, k*p + p). d must be a multiple of 8.
#pragma once

#include <algorithm>
#include <cstddef>

namespace kvpack::format {

// Byte offset within a key plane of T tokens, and the bit shift of the value.
inline size_t key_plane_byte(int T, int d, int p, int t, int j, int* shift) {
  const int C = 32 / p, o = j / C, c = j % C, w = std::min(C, d - C * o), B = w * p / 8;
  *shift = c / B * p;
  return static_cast<size_t>(o) * 4 * T + static_cast<size_t>(t) * B + c % B;
}

// Byte offset within a value plane, and the bit shift of the value.
inline size_t value_plane_byte(int d, int p, int t, int j, int* shift) {
  const int C = 128 / p, b = j / C, c = j % C, w = std::min(C, d - C * b), L = w * p / 8;
  *shift = c / L * p;
  return (static_cast<size_t>(t / 4) * (static_cast<size_t>(d) * p / 8) + 16 * b + c % L) * 4 +
         t % 4;
}

}  // namespace kvpack::format
