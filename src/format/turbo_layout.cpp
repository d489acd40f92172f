// Bit packing for the TurboQuant blocks (layout in turbo_layout.h).
#include "format/turbo_layout.h"

#include <algorithm>

#include "format/planes.h"

#include "base/error.h"
#include "kvpack/format.h"

namespace kvpack::format {

void pack_codes(const uint8_t* idx, int n, int bits, uint8_t* out) {
  KVPACK_DASSERT(bits >= 1 && bits <= 8 && (n * bits) % 8 == 0, "bits {} n {}", bits, n);
  std::memset(out, 0, static_cast<size_t>(n) * bits / 8);
  // A code may straddle two bytes (3 bits); accumulate into a small bit buffer instead.
  uint32_t acc = 0;
  int filled = 0;
  size_t o = 0;
  for (int j = 0; j < n; ++j) {
    KVPACK_DASSERT(idx[j] < (1u << bits), "code {} too wide for {} bits", idx[j], bits);
    acc |= static_cast<uint32_t>(idx[j]) << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<uint8_t>(acc & 0xff);
      acc >>= 8;
      filled -= 8;
    }
  }
}

void unpack_codes(const uint8_t* in, int n, int bits, uint8_t* idx) {
  const uint32_t mask = (1u << bits) - 1;
  uint32_t acc = 0;
  int filled = 0;
  size_t i = 0;
  for (int j = 0; j < n; ++j) {
    if (filled < bits) {
      acc |= static_cast<uint32_t>(in[i++]) << filled;
      filled += 8;
    }
    idx[j] = static_cast<uint8_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
}

void TurboLayout::describe(BlockLayout& out) const {
  out.element = BlockLayout::Element::centroid;
  out.order = key ? BlockLayout::Order::key_planes : BlockLayout::Order::value_planes;
  out.codebook_bits = bits;
  out.sign_in_code = nibble_signs();
  if (bits == 3 && !nibble_signs()) {
    out.planes[0] = 2, out.planes[1] = 1;  // low bits, then bit 2
  } else {
    out.planes[0] = nibble_signs() ? 4 : bits, out.planes[1] = 0;
  }
  out.norms = norms_offset();
  out.gammas = qjl ? gammas_offset() : BlockLayout::kAbsent;
  out.codes = codes_offset();
  out.signs = qjl && !nibble_signs() ? signs_offset() : BlockLayout::kAbsent;
  out.payload = payload_bytes();
}

size_t TurboLayout::plane_byte(size_t plane, int p, int t, int j, int* shift) const {
  return plane + (key ? key_plane_byte(page_tokens, head_dim, p, t, j, shift)
                      : value_plane_byte(head_dim, p, t, j, shift));
}

unsigned TurboLayout::get(const uint8_t* block, size_t plane, int p, int t, int j) const {
  int shift = 0;
  const uint8_t byte = block[plane_byte(plane, p, t, j, &shift)];
  return (byte >> shift) & ((1u << p) - 1);
}

void TurboLayout::put(uint8_t* block, size_t plane, int p, int t, int j, unsigned v) const {
  int shift = 0;
  uint8_t& byte = block[plane_byte(plane, p, t, j, &shift)];
  const unsigned mask = ((1u << p) - 1) << shift;
  byte = static_cast<uint8_t>((byte & ~mask) | ((v << shift) & mask));
}

// The planes of the MSE codes: 4-bit (4-bit codes, or turbo4_qjl's code | sign << 3), 2-bit,
// or 2-bit low bits then a 1-bit plane of bit 2 (3-bit codes).
void TurboLayout::store_codes(uint8_t* block, int t, const uint8_t* idx) const {
  const size_t low = codes_offset();
  const size_t high = low + code_rows() * static_cast<size_t>(head_dim) / 4;
  for (int j = 0; j < head_dim; ++j) {
    KVPACK_DASSERT(idx[j] < (1u << bits), "code {} too wide for {} bits", idx[j], bits);
    if (bits == 4) {
      put(block, low, 4, t, j, idx[j]);
    } else if (nibble_signs()) {
      put(block, low, 4, t, j, (get(block, low, 4, t, j) & 8u) | idx[j]);
    } else if (bits == 2 || bits == 1) {
      put(block, low, bits, t, j, idx[j]);
    } else {
      put(block, low, 2, t, j, idx[j] & 3u);
      put(block, high, 1, t, j, idx[j] >> 2);
    }
  }
}

void TurboLayout::load_codes(const uint8_t* block, int t, uint8_t* idx) const {
  const size_t low = codes_offset();
  const size_t high = low + code_rows() * static_cast<size_t>(head_dim) / 4;
  for (int j = 0; j < head_dim; ++j) {
    unsigned v;
    if (bits == 4) {
      v = get(block, low, 4, t, j);
    } else if (nibble_signs()) {
      v = get(block, low, 4, t, j) & 7u;
    } else if (bits == 2 || bits == 1) {
      v = get(block, low, bits, t, j);
    } else {
      v = get(block, low, 2, t, j) | get(block, high, 1, t, j) << 2;
    }
    idx[j] = static_cast<uint8_t>(v);
  }
}

void TurboLayout::store_signs(uint8_t* block, int t, const uint8_t* bits_in) const {
  for (int j = 0; j < head_dim; ++j) {
    const unsigned s = (bits_in[j >> 3] >> (j & 7)) & 1u;
    if (nibble_signs()) {
      put(block, codes_offset(), 4, t, j, (get(block, codes_offset(), 4, t, j) & 7u) | s << 3);
    } else {
      put(block, signs_offset(), 1, t, j, s);
    }
  }
}

void TurboLayout::load_signs(const uint8_t* block, int t, uint8_t* bits_out) const {
  std::memset(bits_out, 0, sign_row_bytes());
  for (int j = 0; j < head_dim; ++j) {
    const unsigned s = nibble_signs() ? get(block, codes_offset(), 4, t, j) >> 3
                                      : get(block, signs_offset(), 1, t, j);
    bits_out[j >> 3] = static_cast<uint8_t>(bits_out[j >> 3] | s << (j & 7));
  }
}

void pack_signs(const float* v, int n, uint8_t* out) {
  for (int k = 0; k < n / 8; ++k) {
    uint8_t byte = 0;
    for (int b = 0; b < 8; ++b) byte |= static_cast<uint8_t>((v[8 * k + b] >= 0.0f) << b);
    out[k] = byte;
  }
}

void unpack_signs(const uint8_t* in, int n, float* out) {
  for (int j = 0; j < n; ++j) out[j] = (in[j >> 3] >> (j & 7)) & 1 ? 1.0f : -1.0f;
}

}  // namespace kvpack::format
