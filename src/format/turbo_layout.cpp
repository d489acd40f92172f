// Bit packing for the TurboQuant blocks (layout in turbo_layout.h).
#include "format/turbo_layout.h"

#include "base/error.h"

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
