// Scalar conversions between f32 and the narrow float types kvpack stores: IEEE f16, bfloat16
// and fp8 e4m3 (OCP "FN" variant: no infinities, max 448). All round to nearest even. These are
// the reference; SIMD paths convert whole rows and are tested against them.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace kvpack {

// IEEE half: overflow gives +-inf, NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {  // below 2^-14: f16 subnormal m * 2^-24 (m == 1024 is the first normal)
    const float v = std::bit_cast<float>(a) * 16777216.0f;  // exact: scaling by a power of two
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(v)));
  }
  a += 0xc8000fffu + ((a >> 13) & 1u);  // rebias exponent 127 -> 15 and round to nearest even
  return static_cast<uint16_t>(sign | (a >> 13));
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-08f;  // 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Largest finite f16; formats saturate to it rather than store infinities.
inline constexpr float kF16Max = 65504.0f;

// f16 with saturation: finite values beyond the range become +-65504, NaN becomes 0.
inline uint16_t f32_to_f16_sat(float f) {
  if (std::isnan(f)) return 0;
  if (f > kF16Max) f = kF16Max;
  if (f < -kF16Max) f = -kF16Max;
  return f32_to_f16(f);
}

inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

// fp8 e4m3 (bias 7, subnormals down to 2^-9, 0x7f/0xff are NaN). Saturating: |x| >= 448 gives
// +-448; NaN gives the NaN code.
inline constexpr float kE4M3Max = 448.0f;

inline uint8_t f32_to_e4m3(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint8_t sign = static_cast<uint8_t>((x >> 24) & 0x80u);
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);
  const float af = std::bit_cast<float>(a);
  if (af >= kE4M3Max) return static_cast<uint8_t>(sign | 0x7eu);
  if (af < 0.015625f) {  // below 2^-6: subnormal m * 2^-9 (m == 8 is the first normal)
    return static_cast<uint8_t>(sign | static_cast<uint32_t>(std::nearbyint(af * 512.0f)));
  }
  a += 0x7ffffu + ((a >> 20) & 1u);       // round the mantissa to 3 bits, nearest even
  const uint32_t exp = (a >> 23) - 120u;  // rebias 127 -> 7
  const uint32_t code = (exp << 3) | ((a >> 20) & 7u);
  return static_cast<uint8_t>(sign | (code > 0x7eu ? 0x7eu : code));
}

inline float e4m3_to_f32(uint8_t v) {
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 7u;
  float r;
  if ((v & 0x7fu) == 0x7fu) {
    r = std::nanf("");
  } else if (exp == 0) {
    r = static_cast<float>(mant) * 0.001953125f;  // 2^-9
  } else {
    r = std::bit_cast<float>(((exp + 120u) << 23) | (mant << 20));
  }
  return (v & 0x80u) ? -r : r;
}

// Row conversions (scalar reference; the attention kernels have their own SIMD paths).
void f32_to_f16_row(const float* x, uint16_t* y, size_t n);
void f16_to_f32_row(const uint16_t* x, float* y, size_t n);

}  // namespace kvpack
