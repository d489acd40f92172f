// Byte layout of one KV head's block for the TurboQuant formats, and the packing of their b-bit
// codes: the one place that knows where each field sits. docs/formats.md draws the same picture.
//
// Block of one head, T = page_tokens, T4 = T rounded up to 4, d = head_dim, b = MSE code bits:
//   norms   f16[T]          stored norm per token (||x|| / ||c[idx]||, norm-corrected)
//   gammas  f16[T]          QJL only: ||r||, the norm of the MSE residual
//   codes   T4 * d * b / 8  the MSE codes in bit planes (below)
//   signs   T4 * d / 8      QJL only: the sign bits of S r, a 1-bit plane
// then zero padding to 64 bytes. With T = 32 the norms fill one cache line, so the codes start
// cache-line aligned (the QJL gammas fill the second).
//
// Codes are split into bit planes (format/planes.h): 4-bit codes are one 4-bit plane, 2-bit
// codes one 2-bit plane, 3-bit codes a 2-bit plane of the low bits followed by a 1-bit plane of
// the high bit (turbo4_qjl keys instead put code | sign << 3 in one 4-bit plane). Keys use key
// planes (a 64-byte line is 16 tokens x one 4-channel quad per value position), values value
// planes (token quads: 16 channel slots x 4 tokens).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kvpack/format.h"

namespace kvpack::format {

struct TurboLayout {
  int head_dim;
  int page_tokens;
  int bits;  // bits per MSE code (1..4)
  bool qjl;  // QJL variant: gammas and sign bits present
  bool key;  // K role (key planes) or V role (token quads)

  size_t norms_offset() const { return 0; }
  size_t gammas_offset() const { return 2 * static_cast<size_t>(page_tokens); }
  size_t codes_offset() const { return (qjl ? 4 : 2) * static_cast<size_t>(page_tokens); }
  size_t code_rows() const { return (static_cast<size_t>(page_tokens) + 3) / 4 * 4; }
  size_t code_row_bytes() const { return static_cast<size_t>(head_dim) * bits / 8; }
  size_t signs_offset() const { return codes_offset() + code_rows() * code_row_bytes(); }
  size_t sign_row_bytes() const { return static_cast<size_t>(head_dim) / 8; }
  size_t payload_bytes() const {
    return signs_offset() + (qjl ? code_rows() * sign_row_bytes() : 0);
  }
  // turbo4_qjl keys: code and sign share one 4-bit plane.
  bool nibble_signs() const { return qjl && key && bits == 3; }

  // This layout as the kernels read it (format.h: BlockLayout).
  void describe(BlockLayout& out) const;

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

  // Token t's codes idx: [head_dim] (each < 2^bits).
  void store_codes(uint8_t* block, int t, const uint8_t* idx) const;
  void load_codes(const uint8_t* block, int t, uint8_t* idx) const;
  // QJL: token t's sign bits, bit j of bits[j / 8] = 1 when (S r)_j >= 0.
  void store_signs(uint8_t* block, int t, const uint8_t* bits) const;
  void load_signs(const uint8_t* block, int t, uint8_t* bits) const;

  // Where value j of token t sits in a plane of p bits starting at byte `plane` (this layout's
  // role): the byte offset from the block and the bit shift.
  size_t plane_byte(size_t plane, int p, int t, int j, int* shift) const;

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

 private:
  // Reads/writes a p-bit value in the plane at `plane`.
  unsigned get(const uint8_t* block, size_t plane, int p, int t, int j) const;
  void put(uint8_t* block, size_t plane, int p, int t, int j, unsigned v) const;
};

// Packs codes idx: [n] (each < 2^bits) into out: [n * bits / 8] bytes, code j in bits
// [j*bits, j*bits + bits), LSB first; n * bits % 8 == 0. (A plain little-endian bit string: the
// blocks use the planes above; tests and tools use this.)
void pack_codes(const uint8_t* idx, int n, int bits, uint8_t* out);
// Inverse of pack_codes: idx: [n].
void unpack_codes(const uint8_t* in, int n, int bits, uint8_t* idx);
// Sign bits: out: [n / 8] with bit j = (v[j] >= 0); n % 8 == 0.
void pack_signs(const float* v, int n, uint8_t* out);
// +-1.0f per bit: out: [n].
void unpack_signs(const uint8_t* in, int n, float* out);

}  // namespace kvpack::format
