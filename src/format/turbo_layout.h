// Byte layout of one KV head's block for the TurboQuant formats, and the packing of their b-bit
// codes: the one place that knows where each field sits, so a SIMD re-layout later changes only
// this file (and the code readers written against it). docs/formats.md draws the same picture.
//
// Block of one head, T = page_tokens tokens, d = head_dim, b = bits of the MSE codes:
//   norms   f16[T]                 stored norm per token (||x|| / ||c[idx]||, norm-corrected)
//   gammas  f16[T]                 QJL only: ||r||, the norm of the MSE residual
//   codes   u8[T4][d*b/8]          T4 = T rounded up to 4; per token, code j in bits [j*b, j*b + b)
//                                  of the row, LSB first;
//                                  turbo4 keys (interleaved): u8[d/8][T][4], byte (o, t, i)
//                                  holds code 8o + i (low nibble) and 8o + 4 + i (high) of token
//                                  t, for int8 dot-product instructions (as q4 keys);
//                                  turbo4 values (token quads): u8[T4/4][d/2][4], as q4 values:
//                                  within each block of w = 32 codes (d % 32 for a last, shorter
//                                  block), byte (q, 16 * block + l, i) holds code l (low nibble)
//                                  and code l + w/2 (high) of token 4q + i
//   signs   u8[T][d/8]             QJL only: bit j of the row = 1 when (S r)_j >= 0
// then zero padding to 64 bytes. With T = 32 the norms fill exactly one cache line, so the codes
// start cache-line aligned (the QJL gammas fill the second).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kvpack::format {

struct TurboLayout {
  int head_dim;
  int page_tokens;
  int bits;                  // bits per MSE code (1..4)
  bool qjl;                  // QJL variant: gammas and sign rows present
  bool interleaved = false;  // 4-bit K codes in the channel-interleaved arrangement
  bool quads = false;        // 4-bit V codes in token quads (below)

  size_t norms_offset() const { return 0; }
  size_t gammas_offset() const { return 2 * static_cast<size_t>(page_tokens); }
  size_t codes_offset() const { return (qjl ? 4 : 2) * static_cast<size_t>(page_tokens); }
  size_t code_row_bytes() const { return static_cast<size_t>(head_dim) * bits / 8; }
  size_t code_rows() const { return (static_cast<size_t>(page_tokens) + 3) / 4 * 4; }
  size_t signs_offset() const { return codes_offset() + code_rows() * code_row_bytes(); }
  size_t sign_row_bytes() const { return static_cast<size_t>(head_dim) / 8; }
  size_t payload_bytes() const {
    return signs_offset() + (qjl ? page_tokens * sign_row_bytes() : 0);
  }

  // Zeroes the bytes after the payload up to the block's end (docs/formats.md: zero padding).
  void zero_padding(uint8_t* block, size_t head_bytes) const {
    std::memset(block + payload_bytes(), 0, head_bytes - payload_bytes());
  }

  uint16_t norm(const uint8_t* block, int t) const { return load16(block + norms_offset(), t); }
  uint16_t gamma(const uint8_t* block, int t) const { return load16(block + gammas_offset(), t); }
  void set_norm(uint8_t* block, int t, uint16_t v) const { store16(block + norms_offset(), t, v); }
  void set_gamma(uint8_t* block, int t, uint16_t v) const {
    store16(block + gammas_offset(), t, v);
  }
  const uint8_t* code_row(const uint8_t* block, int t) const {
    return block + codes_offset() + t * code_row_bytes();
  }
  uint8_t* code_row(uint8_t* block, int t) const {
    return block + codes_offset() + t * code_row_bytes();
  }
  // Byte offset (from the block) of code j of token t in the token-quad arrangement, and
  // whether it is the high nibble.
  size_t quad_byte(int t, int j, bool* high) const;
  // Token t's codes idx: [head_dim], in whichever arrangement this layout uses.
  void store_codes(uint8_t* block, int t, const uint8_t* idx) const;
  void load_codes(const uint8_t* block, int t, uint8_t* idx) const;

  const uint8_t* sign_row(const uint8_t* block, int t) const {
    return block + signs_offset() + t * sign_row_bytes();
  }
  uint8_t* sign_row(uint8_t* block, int t) const {
    return block + signs_offset() + t * sign_row_bytes();
  }

  // Little-endian f16 fields (memcpy: blocks carry no alignment promise for single fields).
  static uint16_t load16(const uint8_t* base, int t) {
    uint8_t b[2];
    std::memcpy(b, base + 2 * static_cast<size_t>(t), 2);
    return static_cast<uint16_t>(b[0] | (b[1] << 8));
  }
  static void store16(uint8_t* base, int t, uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v & 0xff), static_cast<uint8_t>(v >> 8)};
    std::memcpy(base + 2 * static_cast<size_t>(t), b, 2);
  }
};

// Packs codes idx: [n] (each < 2^bits) into out: [n * bits / 8] bytes; n * bits % 8 == 0.
void pack_codes(const uint8_t* idx, int n, int bits, uint8_t* out);
// Inverse of pack_codes: idx: [n].
void unpack_codes(const uint8_t* in, int n, int bits, uint8_t* idx);
// Sign bits: out: [n / 8] with bit j = (v[j] >= 0); n % 8 == 0.
void pack_signs(const float* v, int n, uint8_t* out);
// +-1.0f per bit: out: [n].
void unpack_signs(const uint8_t* in, int n, float* out);

}  // namespace kvpack::format
