// q8, q4, q4a: every value within half a step of its group's grid, steps no larger than the
// theory allows, the documented byte layout (and ggml's block decode), saturation of
// non-finite input, names and bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "base/error.h"
#include "grid_checks.h"

namespace kvpack::format {
namespace {

using testing::f16_at;
using testing::Rows;

// The documented layout (docs/formats.md), restated independently of the codec.
struct IntSpec {
  FormatId id;
  int bits;   // per code
  bool asym;  // has a min per group
  int top;    // largest grid index magnitude (q8 127, q4 7) or level count (q4a 15)
  // Codes take T rounded up to a multiple of 4 rows (V: token quads).
  size_t steps_offset(int d, int T) const {
    return static_cast<size_t>((T + 3) / 4 * 4) * d * bits / 8;
  }
  // V role: the byte of value j of token t (token quads) and whether it is the high nibble.
  size_t value_byte(int d, int t, int j, bool* high) const {
    if (bits == 8) {
      *high = false;
      return (static_cast<size_t>(t / 4) * d + j) * 4 + t % 4;
    }
    const int block = j / 32, p = j % 32, half = std::min(32, d - 32 * block) / 2;
    *high = p >= half;
    return (static_cast<size_t>(t / 4) * (d / 2) + 16 * block + p % half) * 4 + t % 4;
  }
  // Steps (and mins) are group-major: f16[G][T].
  size_t step_at(int d, int T, int t, int gi) const {
    return steps_offset(d, T) + 2 * (static_cast<size_t>(gi) * T + t);
  }
  size_t min_at(int d, int T, int t, int gi) const {
    return step_at(d, T, t, gi) + 2 * static_cast<size_t>(T) * (d / group_size(d));
  }
};

constexpr IntSpec kSpecs[] = {
    {FormatId::q8, 8, false, 127}, {FormatId::q4, 4, false, 7}, {FormatId::q4a, 4, true, 15}};

TEST(IntFormats, EveryValueWithinHalfAStepOfItsGroup) {
  for (const IntSpec& spec : kSpecs) {
    double worst = 0;  // largest |error| / step seen
    testing::for_each_round_trip(
        spec.id, Role::V,
        [&](const Codec& codec, const Rows& in, const std::vector<uint8_t>& block,
            const std::vector<float>& out) {
          const int d = in.d, T = codec.page_tokens(), g = group_size(d);
          for (int t = 0; t < in.n; ++t) {
            for (int gi = 0; gi < d / g; ++gi) {
              const float* x = in.x.data() + static_cast<size_t>(t) * d + gi * g;
              const float* y = out.data() + static_cast<size_t>(t) * d + gi * g;
              float lo = testing::saturated(x[0]), hi = lo, amax = 0;
              for (int p = 0; p < g; ++p) {
                lo = std::fmin(lo, testing::saturated(x[p]));
                hi = std::fmax(hi, testing::saturated(x[p]));
                amax = std::fmax(amax, std::fabs(testing::saturated(x[p])));
              }
              const double s = f16_at(block, spec.step_at(d, T, t, gi));
              const double m = spec.asym ? f16_at(block, spec.min_at(d, T, t, gi)) : 0.0;
              if (spec.asym) {
                // The min is lo rounded down to f16: at most one f16 ulp below.
                ASSERT_LE(m, lo);
                ASSERT_GE(m, lo - (0x1p-10 * std::fabs(lo) + 0x1p-24));
                ASSERT_LE(s, testing::max_step(hi - m, spec.top));
              } else {
                ASSERT_LE(s, testing::max_step(amax, spec.top));
              }
              for (int p = 0; p < g; ++p) {
                const double err = std::fabs(testing::saturated(x[p]) - static_cast<double>(y[p]));
                // Half a step, plus float rounding: (x - m) / s is computed with relative error
                // 2^-24 on at most top + 1/2 steps, and k*s + m rounds by 2^-24 |y|.
                const double bound = 0.5 * s + 0x1p-22 * (spec.top * s + std::fabs(y[p]));
                ASSERT_LE(err, bound) << "t=" << t << " j=" << gi * g + p << " step=" << s;
                if (s > 0) worst = std::fmax(worst, err / s);
              }
            }
          }
        });
    std::printf("%s: max |error| / step = %.6f (bound 0.5)\n", info(spec.id).name.data(), worst);
    EXPECT_LE(worst, 0.5 + 1e-5);
  }
}

// Rounding to nearest leaves an error uniform on [-s/2, s/2], mean square s^2/12, for every
// value except the group's extremes, which the grid hits (up to the f16 rounding of the step):
// one per group for the symmetric formats, two for q4a. Truncation would give s^2/3.
TEST(IntFormats, GaussianMeanSquareErrorIsUniformRounding) {
  for (const IntSpec& spec : kSpecs) {
    const int d = 128, T = 256, g = group_size(d);
    auto codec = make_codec(spec.id, CodecConfig{Role::K, d, T, 1, 0});
    const Rows in = testing::gaussian_rows(T, d, 99);
    std::vector<float> out;
    const auto block = testing::round_trip(*codec, in, out);
    double se = 0, uniform = 0;
    for (int t = 0; t < T; ++t) {
      for (int j = 0; j < d; ++j) {
        const double s = f16_at(block, spec.step_at(d, T, t, j / g));
        const double e = in.x[static_cast<size_t>(t) * d + j] - out[static_cast<size_t>(t) * d + j];
        se += e * e;
        uniform += s * s / 12;
      }
    }
    const double expected = static_cast<double>(g - (spec.asym ? 2 : 1)) / g;
    // 32768 samples: the ratio's sampling error is about 0.5%; 3% also covers the slight
    // non-uniformity of a Gaussian within one step.
    EXPECT_NEAR(se / uniform, expected, 0.03) << info(spec.id).name;
    std::printf("%s: MSE / (mean step^2 / 12) = %.4f (expected %.4f)\n", info(spec.id).name.data(),
                se / uniform, expected);
  }
}

// ggml's dequantization of one 32-value block, from its definition (q8_0: q*d; q4_0: (q-8)*d;
// q4_1: q*d + m; 4-bit byte i holds value i in the low nibble, value i + 16 in the high one).
void ggml_dequant(const IntSpec& spec, const uint8_t* qs, float d, float m, float* y) {
  for (int i = 0; i < 32; ++i) {
    if (spec.bits == 8) {
      y[i] = static_cast<int8_t>(qs[i]) * d;
    } else {
      const int q = i < 16 ? (qs[i] & 0xf) : (qs[i - 16] >> 4);
      y[i] = spec.asym ? q * d + m : (q - 8) * d;
    }
  }
}

TEST(IntFormats, GroupsDecodeAsGgmlBlocks) {
  // The grids are ggml's: a group's codes, gathered from the token quads into ggml's qs order,
  // dequantize with ggml's formulas to exactly what decode() returns.
  const int d = 128, T = 32;
  for (const IntSpec& spec : kSpecs) {
    auto codec = make_codec(spec.id, CodecConfig{Role::V, d, T, 1, 0});
    const Rows in = testing::outlier_rows(T, d, 5);
    std::vector<float> out;
    const auto block = testing::round_trip(*codec, in, out);
    for (int t = 0; t < T; ++t) {
      for (int gi = 0; gi < d / 32; ++gi) {
        uint8_t qs[32] = {};
        for (int i = 0; i < 32; ++i) {
          bool high = false;
          const uint8_t byte = block[spec.value_byte(d, t, gi * 32 + i, &high)];
          if (spec.bits == 8) {
            qs[i] = byte;
          } else if (i < 16) {
            qs[i] = static_cast<uint8_t>(qs[i] | (high ? byte >> 4 : byte & 0xf));
          } else {
            qs[i - 16] = static_cast<uint8_t>(qs[i - 16] | (high ? byte >> 4 : byte & 0xf) << 4);
          }
        }
        const float m = spec.asym ? f16_at(block, spec.min_at(d, T, t, gi)) : 0.0f;
        float y[32];
        ggml_dequant(spec, qs, f16_at(block, spec.step_at(d, T, t, gi)), m, y);
        for (int i = 0; i < 32; ++i) {
          ASSERT_EQ(y[i], out[static_cast<size_t>(t) * d + gi * 32 + i])
              << info(spec.id).name << " t=" << t << " group " << gi << " i=" << i;
        }
      }
    }
  }
}

TEST(IntFormats, ByteLayoutMatchesDocs) {
  // V role: token quads. One group per token; steps at T*d*bits/8. Token 1 of the first quad:
  // byte (q, lane, i) sits at (q * lanes + lane) * 4 + i.
  const int d = 32, T = 16;
  std::vector<float> x(2 * d, 0.0f);
  float* x1 = x.data() + d;
  x1[5] = 7.0f;
  x1[21] = -7.0f;  // step 1: codes 15 and 1, sharing lane 5 (low, high nibble)
  auto q4 = make_codec(FormatId::q4, CodecConfig{Role::V, d, T, 1, 0});
  std::vector<uint8_t> b(q4->head_bytes());
  q4->encode(0, x.data(), 2, b.data());
  for (int l = 0; l < 16; ++l) EXPECT_EQ(b[l * 4 + 1], l == 5 ? 0x1f : 0x88) << "q4 lane " << l;
  EXPECT_EQ(b[256 + 2], 0x00);  // token 1's step, f16 1.0 = 0x3c00, little-endian
  EXPECT_EQ(b[256 + 3], 0x3c);

  auto q8 = make_codec(FormatId::q8, CodecConfig{Role::V, d, T, 1, 0});
  x1[5] = 127.0f;
  x1[21] = -127.0f;
  b.assign(q8->head_bytes(), 0);
  q8->encode(0, x.data(), 2, b.data());
  EXPECT_EQ(b[5 * 4 + 1], 0x7f);
  EXPECT_EQ(b[21 * 4 + 1], 0x81);
  EXPECT_EQ(b[512 + 3], 0x3c);  // token 1's step 1.0 at T*d + 2

  // q4a: x_j = (j % 16) + 2 gives min 2, step 1, codes j % 16.
  for (int j = 0; j < d; ++j) x1[j] = static_cast<float>(j % 16 + 2);
  auto q4a = make_codec(FormatId::q4a, CodecConfig{Role::V, d, T, 1, 0});
  b.assign(q4a->head_bytes(), 0);
  q4a->encode(0, x.data(), 2, b.data());
  for (int l = 0; l < 16; ++l) EXPECT_EQ(b[l * 4 + 1], (l << 4) | l) << "q4a lane " << l;
  EXPECT_EQ(b[256 + 3], 0x3c);           // step 1.0 = 0x3c00 at T*d/2 + 2
  EXPECT_EQ(b[256 + 32 + 2 + 1], 0x40);  // min 2.0 = 0x4000 after T*G steps
}

// K role: codes interleaved by channel quads (q8) or octets (4-bit) across the page's tokens.
TEST(IntFormats, KeyLayoutInterleavesChannelsAcrossTokens) {
  const int d = 32, T = 16;
  std::vector<float> x(2 * d, 0.0f);  // two tokens
  for (int j = 0; j < d; ++j) {
    x[j] = static_cast<float>(j % 8 - 3);         // token 0: q4 codes j % 8 + 5 (step 1)
    x[d + j] = static_cast<float>(-(j % 8) + 3);  // token 1
  }
  x[7] = 7.0f;  // pins token 0's step to 1 (amax 7); token 1's amax is 4 -> step 4/7
  x[d + 7] = -7.0f;
  auto q4 = make_codec(FormatId::q4, CodecConfig{Role::K, d, T, 1, 0});
  std::vector<uint8_t> b(q4->head_bytes());
  q4->encode(0, x.data(), 2, b.data());
  // byte (o, t, i) = channel 8o + i (low) | channel 8o + 4 + i (high), at ((o * T) + t) * 4 + i
  for (int o = 0; o < d / 8; ++o) {
    for (int i = 0; i < 4; ++i) {
      const int lo = static_cast<int>(x[8 * o + i]) + 8;
      const int hi = static_cast<int>(x[8 * o + 4 + i]) + 8;
      EXPECT_EQ(b[(o * T + 0) * 4 + i], (hi << 4) | lo) << "q4 octet " << o << " i " << i;
    }
  }
  std::vector<float> y(2 * d);
  q4->decode(0, b.data(), 2, y.data());
  for (int j = 0; j < d; ++j) EXPECT_EQ(y[j], x[j]) << j;

  auto q8 = make_codec(FormatId::q8, CodecConfig{Role::K, d, T, 1, 0});
  for (int j = 0; j < d; ++j) x[j] = static_cast<float>(j * 4 - 64);  // amax 64 -> not 127...
  x[0] = -127.0f;                                                     // ... step 1
  b.assign(q8->head_bytes(), 0);
  q8->encode(0, x.data(), 2, b.data());
  // byte (c, t, i) = channel 4c + i of token t, at ((c * T) + t) * 4 + i
  for (int j = 0; j < d; ++j) {
    EXPECT_EQ(static_cast<int8_t>(b[(j / 4 * T + 0) * 4 + j % 4]), static_cast<int>(x[j])) << j;
  }
  EXPECT_EQ(b[T * d + 1], 0x3c);  // token 0's step 1.0 = 0x3c00 at T*d (f16[G][T])
}

// NaN -> 0, +-Inf and finite values beyond f16 -> +-65504, each within half a step.
TEST(IntFormats, NonFiniteInputSaturatesWithinHalfAStep) {
  for (const IntSpec& spec : kSpecs) {
    const int d = 32, T = 16;
    auto codec = make_codec(spec.id, CodecConfig{Role::K, d, T, 1, 0});
    Rows in = testing::gaussian_rows(1, d, 3);
    in.x[0] = std::numeric_limits<float>::quiet_NaN();
    in.x[1] = std::numeric_limits<float>::infinity();
    in.x[2] = -std::numeric_limits<float>::infinity();
    in.x[3] = 3e38f;
    std::vector<float> y;
    const auto block = testing::round_trip(*codec, in, y);
    const double half = 0.5 * f16_at(block, spec.step_at(d, T, 0, 0));
    EXPECT_LE(std::fabs(y[0]), half) << info(spec.id).name;
    EXPECT_LE(std::fabs(y[1] - 65504.0), half) << info(spec.id).name;
    EXPECT_LE(std::fabs(y[2] + 65504.0), half) << info(spec.id).name;
    EXPECT_LE(std::fabs(y[3] - 65504.0), half) << info(spec.id).name;
  }
}

TEST(IntFormats, LlamaCppNamesAndBitsPerValue) {
  EXPECT_EQ(parse_format("q8_0"), FormatId::q8);
  EXPECT_EQ(parse_format("Q4_0"), FormatId::q4);
  EXPECT_EQ(parse_format("q4_1"), FormatId::q4a);
  // Codes plus one f16 (q4a: two) per group of 32, 16 or 8 values.
  EXPECT_DOUBLE_EQ(info(FormatId::q8).bits_per_value(128), 8.5);
  EXPECT_DOUBLE_EQ(info(FormatId::q4).bits_per_value(128), 4.5);
  EXPECT_DOUBLE_EQ(info(FormatId::q4a).bits_per_value(128), 5.0);
  EXPECT_DOUBLE_EQ(info(FormatId::q8).bits_per_value(80), 9.0);
  EXPECT_DOUBLE_EQ(info(FormatId::q4).bits_per_value(8), 6.0);
  EXPECT_DOUBLE_EQ(info(FormatId::q4a).bits_per_value(8), 8.0);
}

TEST(IntFormats, RefuseHeadDimsNotMultipleOf8) {
  for (const IntSpec& spec : kSpecs) {
    const CodecConfig c{Role::K, 12, 32, 1, 0};
    EXPECT_NE(why_unsupported(spec.id, c).find("multiple of 8"), std::string::npos);
    EXPECT_THROW(make_codec(spec.id, c), Error);
  }
}

}  // namespace
}  // namespace kvpack::format
