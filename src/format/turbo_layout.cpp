// Bit packing for the TurboQuant blocks (layout in turbo_layout.h).
#include "format/turbo_layout.h"

#include <algorithm>

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

size_t TurboLayout::quad_byte(int t, int j, bool* high) const {
  const int block = j / 32, p = j % 32, half = std::min(32, head_dim - 32 * block) / 2;
  *high = p >= half;
  return codes_offset() +
         (static_cast<size_t>(t) / 4 * (head_dim / 2) + 16 * block + p % half) * 4 + t % 4;
}

void TurboLayout::store_codes(uint8_t* block, int t, const uint8_t* idx) const {
  if (quads) {
    for (int j = 0; j < head_dim; ++j) {
      bool high = false;
      uint8_t& byte = block[quad_byte(t, j, &high)];
      byte = high ? static_cast<uint8_t>((byte & 0x0f) | (idx[j] << 4))
                  : static_cast<uint8_t>((byte & 0xf0) | idx[j]);
    }
    return;
  }
  if (!interleaved) {
    pack_codes(idx, head_dim, bits, code_row(block, t));
    return;
  }
  KVPACK_DASSERT(bits == 4 && head_dim % 8 == 0, "interleaved codes are 4-bit, d % 8 == 0");
  uint8_t* codes = block + codes_offset();
  for (int o = 0; o < head_dim / 8; ++o) {
    for (int i = 0; i < 4; ++i) {
      codes[(static_cast<size_t>(o) * page_tokens + t) * 4 + i] =
          static_cast<uint8_t>(idx[8 * o + i] | (idx[8 * o + 4 + i] << 4));
    }
  }
}

void TurboLayout::load_codes(const uint8_t* block, int t, uint8_t* idx) const {
  if (quads) {
    for (int j = 0; j < head_dim; ++j) {
      bool high = false;
      const uint8_t byte = block[quad_byte(t, j, &high)];
      idx[j] = high ? byte >> 4 : byte & 0xf;
    }
    return;
  }
  if (!interleaved) {
    unpack_codes(code_row(block, t), head_dim, bits, idx);
    return;
  }
  const uint8_t* codes = block + codes_offset();
  for (int o = 0; o < head_dim / 8; ++o) {
    for (int i = 0; i < 4; ++i) {
      const uint8_t b = codes[(static_cast<size_t>(o) * page_tokens + t) * 4 + i];
      idx[8 * o + i] = b & 0xf;
      idx[8 * o + 4 + i] = b >> 4;
    }
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
