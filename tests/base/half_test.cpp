#include "base/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/rng.h"

namespace kvpack {
namespace {

TEST(Half, EveryF16RoundTripsThroughF32) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), h) << "f16 0x" << std::hex << h;
  }
}

// Nearest-even reference by brute force over all finite f16 values.
uint16_t nearest_f16(float f) {
  uint16_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    for (uint32_t s : {0u, 0x8000u}) {
      const uint16_t code = static_cast<uint16_t>(h | s);
      const double err = std::fabs(static_cast<double>(f16_to_f32(code)) - f);
      if (err < best_err || (err == best_err && (code & 1) == 0 && (best & 1) == 1)) {
        best = code;
        best_err = err;
      }
    }
  }
  return best;
}

TEST(Half, F32ToF16RoundsToNearestEven) {
  Rng rng(1);
  for (int i = 0; i < 300; ++i) {
    // Spread over the whole f16 range, subnormals included.
    const float f =
        static_cast<float>((rng.uniform() * 2 - 1) * std::exp2(rng.uniform() * 42 - 26));
    const uint16_t want = nearest_f16(f);
    if (f == 0.0f) continue;
    EXPECT_EQ(f32_to_f16(f) & 0x7fff, want & 0x7fff) << f;
  }
  // Ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 and rounds to even (1).
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // halfway to the smallest subnormal: even
  EXPECT_EQ(f32_to_f16(0x1p-25f * 1.01f), 0x0001);
}

TEST(Half, SaturatingF16) {
  EXPECT_EQ(f32_to_f16_sat(1e9f), 0x7bff);
  EXPECT_EQ(f32_to_f16_sat(-1e9f), 0xfbff);
  EXPECT_EQ(f32_to_f16_sat(std::nanf("")), 0);
  EXPECT_EQ(f32_to_f16_sat(-std::numeric_limits<float>::infinity()), 0xfbff);
}

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  Rng rng(2);
  for (int i = 0; i < 10000; ++i) {
    const float f = static_cast<float>(rng.normal() * 1000);
    const float r = bf16_to_f32(f32_to_bf16(f));
    EXPECT_LE(std::fabs(r - f), std::fabs(f) * 0x1p-8f) << f;
  }
}

TEST(Half, EveryE4M3CodeRoundTrips) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = e4m3_to_f32(static_cast<uint8_t>(c));
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(f));
      continue;
    }
    if (c == 0x80) continue;  // -0 encodes as -0; compare bits below
    EXPECT_EQ(f32_to_e4m3(f), c) << "code " << c << " value " << f;
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), 0x1p-9f);
}

TEST(Half, E4M3RoundsToNearestAndSaturates) {
  Rng rng(3);
  for (int i = 0; i < 20000; ++i) {
    const float f =
        static_cast<float>((rng.uniform() * 2 - 1) * std::exp2(rng.uniform() * 20 - 11));
    const float r = e4m3_to_f32(f32_to_e4m3(f));
    // Brute-force nearest finite code.
    double best = std::numeric_limits<double>::infinity();
    for (uint32_t c = 0; c < 256; ++c) {
      const float v = e4m3_to_f32(static_cast<uint8_t>(c));
      if (!std::isnan(v)) best = std::min(best, std::fabs(static_cast<double>(v) - f));
    }
    EXPECT_EQ(std::fabs(static_cast<double>(r) - f), best) << f;
  }
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1e6f)), 448.0f);
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(-500.0f)), -448.0f);
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(std::numeric_limits<float>::infinity())), 448.0f);
}

}  // namespace
}  // namespace kvpack
