// q8, q4, q4a: every value within half a step of its group's grid, steps no larger than the
// theory allows, q4/q4a's searched steps no worse than ggml's encoders, the documented byte
// layout (and ggml's block decode), saturation of non-finite input, names and bits.
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
  int top;    // plain step's divisor: q8 127, q4 7 (amax / 7), q4a 15 (range / 15)
  int reach;  // largest code magnitude: q8 127, q4 8 (codes -8..7), q4a 15
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

constexpr IntSpec kSpecs[] = {{FormatId::q8, 8, false, 127, 127},
                              {FormatId::q4, 4, false, 7, 8},
                              {FormatId::q4a, 4, true, 15, 15}};

TEST(IntFormats, EveryValueWithinHalfAStepOfItsGroup) {
  for (const IntSpec& spec : kSpecs) {
    for (const Role role : {Role::K, Role::V}) {  // q4: signed K steps, V steps >= 0
      double worst = 0;                           // largest |error| / step seen
      testing::for_each_round_trip(
          spec.id, role,
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
                // q4's step is signed (ggml's q4_0 d is too): the grid's 8-step side points at
                // the group's extreme. Searched steps are never above the plain ones.
                const double stored = f16_at(block, spec.step_at(d, T, t, gi));
                if (role == Role::V) {
                  ASSERT_GE(stored, 0.0);  // the value kernels need it
                }
                const double s = std::fabs(stored);
                const double m = spec.asym ? f16_at(block, spec.min_at(d, T, t, gi)) : 0.0;
                if (spec.asym) {
                  ASSERT_LE(s, testing::max_step(testing::plain_asym_range(lo, hi), spec.top));
                  ASSERT_LE(m, lo + 0.5 * s);
                } else {
                  ASSERT_LE(s, testing::max_step(amax, spec.top));
                }
                for (int p = 0; p < g; ++p) {
                  const double err =
                      std::fabs(testing::saturated(x[p]) - static_cast<double>(y[p]));
                  // Half a step, plus float rounding: (x - m) / s is computed with relative error
                  // 2^-24 on at most top + 1/2 steps, and k*s + m rounds by 2^-24 |y|.
                  const double bound = 0.5 * s + 0x1p-22 * (spec.reach * s + std::fabs(y[p]));
                  ASSERT_LE(err, bound) << "t=" << t << " j=" << gi * g + p << " step=" << s;
                  if (s > 0) worst = std::fmax(worst, err / s);
                }
              }
            }
          });
      std::printf("%s %s: max |error| / step = %.6f (bound 0.5)\n", info(spec.id).name.data(),
                  role == Role::K ? "K" : "V", worst);
      EXPECT_LE(worst, 0.5 + 1e-5);
    }
  }
}

// Rounding to nearest leaves an error uniform on [-s/2, s/2], mean square s^2/12, for every
// value except the group's extreme, which q8's plain grid hits (up to the f16 rounding of the
// step). Truncation would give s^2/3. (q4 and q4a pick their steps by this error, so their
// ratio is below uniform rounding's: tested against ggml's encoders below.)
TEST(IntFormats, GaussianMeanSquareErrorIsUniformRounding) {
  for (const IntSpec& spec : {kSpecs[0]}) {
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

// ggml's q4_0 / q4_1 encoders for one 32-value block, restated from their definition (q4_0:
// d = the signed extreme / -8, code min(15, trunc(x / d + 8.5)); q4_1: d = (max - min) / 15,
// code min(15, trunc((x - min) / d + 0.5)); both divide by the unrounded d and store d and min
// as f16). Returns the squared error of the decoded block.
double ggml_sse(const IntSpec& spec, const float* x) {
  float lo = x[0], hi = x[0], ext = x[0];
  for (int i = 0; i < 32; ++i) {
    lo = std::fmin(lo, x[i]), hi = std::fmax(hi, x[i]);
    if (std::fabs(x[i]) > std::fabs(ext)) ext = x[i];
  }
  const float d = spec.asym ? (hi - lo) / 15 : ext / -8;
  const float id = d != 0 ? 1 / d : 0;
  const float ds = f16_to_f32(f32_to_f16(d)), ms = f16_to_f32(f32_to_f16(lo));
  double e = 0;
  for (int i = 0; i < 32; ++i) {
    const int q = spec.asym ? std::min(15, static_cast<int>((x[i] - lo) * id + 0.5f))
                            : std::min(15, static_cast<int>(x[i] * id + 8.5f));
    const double y = spec.asym ? q * ds + ms : (q - 8) * ds;
    e += (x[i] - y) * (x[i] - y);
  }
  return e;
}

// "Equal bits, no worse than llama.cpp" at the format level: q4 and q4a keep every value within
// half a step, ggml's q4_0 clamps the far side by up to a whole step, yet the searched steps
// must give no more squared error than ggml's encoders over whole pages of Gaussian, outlier
// and heavy-tailed values. Measured when the search was introduced: q4 keys 0.89-0.96 of
// q4_0's, q4a 0.54-0.80 of q4_1's. q4 values (steps >= 0, so the 8-step side is always the
// negative one) measured 1.03-1.07 of q4_0's: they must beat the plain amax/7 grid instead.
TEST(IntFormats, SearchedStepsNoWorseThanGgmlEncoders) {
  const int d = 128, T = 256;
  for (const IntSpec& spec : {kSpecs[1], kSpecs[2]}) {
    auto codec = make_codec(spec.id, CodecConfig{spec.asym ? Role::V : Role::K, d, T, 1, 0});
    Rows heavy = testing::gaussian_rows(T, d, 43);
    for (size_t i = 0; i < heavy.x.size(); ++i) heavy.x[i] = std::pow(heavy.x[i], 3.0f);
    heavy.name = "cubed Gaussian";
    for (const Rows& in :
         {testing::gaussian_rows(T, d, 41), testing::outlier_rows(T, d, 42), heavy}) {
      std::vector<float> out;
      testing::round_trip(*codec, in, out);
      double ours = 0, ggml = 0;
      for (size_t i = 0; i < in.x.size(); ++i) ours += (in.x[i] - out[i]) * (in.x[i] - out[i]);
      for (size_t b = 0; b < in.x.size(); b += 32) ggml += ggml_sse(spec, in.x.data() + b);
      std::printf("%s %s: squared error / ggml's = %.4f\n", info(spec.id).name.data(),
                  in.name.c_str(), ours / ggml);
      EXPECT_LE(ours, ggml) << info(spec.id).name << " " << in.name;
    }
  }
}

// q4 values: the step stays >= 0 and the searched grid beats the plain amax/7 one (restated
// here) on every input set (measured when the search was introduced: 0.80-0.90 of its squared
// error on these sets). ggml's q4_0 ratio is printed, not bounded: see the test above.
TEST(IntFormats, Q4ValueStepsBeatThePlainGrid) {
  const int d = 128, T = 256;
  auto codec = make_codec(FormatId::q4, CodecConfig{Role::V, d, T, 1, 0});
  for (const Rows& in : {testing::gaussian_rows(T, d, 51), testing::outlier_rows(T, d, 52)}) {
    std::vector<float> out;
    testing::round_trip(*codec, in, out);
    double ours = 0, plain = 0, ggml = 0;
    for (size_t b = 0; b < in.x.size(); b += 32) {
      ggml += ggml_sse(kSpecs[1], in.x.data() + b);
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(in.x[b + i]));
      const float s = f16_to_f32(f32_to_f16(amax / 7));
      for (int i = 0; i < 32; ++i) {
        const double y =
            s == 0 ? 0 : std::fmin(std::fmax(std::nearbyint(in.x[b + i] / s), -7.0f), 7.0f) * s;
        plain += (in.x[b + i] - y) * (in.x[b + i] - y);
        ours += (in.x[b + i] - out[b + i]) * (in.x[b + i] - out[b + i]);
      }
    }
    std::printf("q4 V %s: squared error / plain amax/7 grid's = %.4f, / ggml q4_0's = %.4f\n",
                in.name.c_str(), ours / plain, ours / ggml);
    EXPECT_LT(ours, 0.95 * plain) << in.name;
  }
}

// q4 uses all 16 codes. Keys: a group holding -7..8 has its extreme (+8) on the grid's 8-step
// side, so the step is -1 (f16 0xbc00) and the codes u = 8 - x run 0..15. Values (steps >= 0):
// a group holding -8..7 gets step 1 and codes u = x + 8. Both decode exactly.
TEST(IntFormats, Q4UsesAllSixteenCodes) {
  const int d = 32, T = 16;
  for (const Role role : {Role::K, Role::V}) {
    std::vector<float> x(d, 0.0f);
    for (int i = 0; i < 16; ++i) x[i] = static_cast<float>(role == Role::K ? i - 7 : i - 8);
    auto q4 = make_codec(FormatId::q4, CodecConfig{role, d, T, 1, 0});
    std::vector<uint8_t> b(q4->head_bytes());
    q4->encode(0, x.data(), 1, b.data());
    EXPECT_EQ(f16_at(b, kSpecs[1].step_at(d, T, 0, 0)), role == Role::K ? -1.0f : 1.0f);
    std::vector<bool> seen(16, false);
    for (int j = 0; j < d; ++j) {
      bool high = false;
      // K: byte (o, t, i) holds channels 8o + i (low) and 8o + 4 + i (high) of token t.
      const size_t at = role == Role::K ? static_cast<size_t>(j / 8 * T) * 4 + j % 4
                                        : kSpecs[1].value_byte(d, 0, j, &high);
      if (role == Role::K) high = j % 8 >= 4;
      seen[high ? b[at] >> 4 : b[at] & 0xf] = true;
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 16);
    std::vector<float> y(d);
    q4->decode(0, b.data(), 1, y.data());
    for (int j = 0; j < d; ++j) EXPECT_EQ(y[j], x[j]) << j;
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
  x[7] = -7.0f;     // token 0: extreme -7 on the 8-step side, integers: step 1 is exact
  x[d + 7] = 7.0f;  // token 1: extreme +7, step -1 (codes 8 - x)
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
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(b[(0 * T + 1) * 4 + i],
              ((8 - static_cast<int>(x[d + 4 + i])) << 4) | (8 - static_cast<int>(x[d + i])))
        << "q4 token 1, i " << i;
  }
  std::vector<float> y(2 * d);
  q4->decode(0, b.data(), 2, y.data());
  for (int j = 0; j < 2 * d; ++j) EXPECT_EQ(y[j], x[j]) << j;

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
    const double half = 0.5 * std::fabs(f16_at(block, spec.step_at(d, T, 0, 0)));
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
