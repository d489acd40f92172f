// fp8 (e4m3 + f16 scale per token): every value within half an e4m3 ulp of x / scale, the
// scale no larger than amax / 448 allows, the documented layout, saturation of non-finite input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "grid_checks.h"

namespace kvpack::format {
namespace {

using testing::f16_at;
using testing::Rows;

// Documented layout: codes e4m3 (K [d][T], V [T][d]), then f16 scale[T] at byte offset T*d.
size_t scale_at(int d, int T, int t) {
  return static_cast<size_t>(T) * d + 2 * static_cast<size_t>(t);
}

// The theory: u = x / s rounds to e4m3 with at most half an ulp of error, 2^-4 |u| in the
// normal range (3 mantissa bits) and 2^-10 below 2^-6 (subnormal spacing 2^-9); the scale keeps
// |u| <= 464, where saturating at 448 also errs by at most half an ulp. In x units, times s;
// plus float rounding of x / s (2^-24 relative), which can move u across a rounding tie.
double fp8_bound(double x, double s) {
  return 0x1p-4 * std::fabs(x) + 0x1p-10 * s + 0x1p-22 * std::fabs(x);
}

TEST(Fp8Format, EveryValueWithinHalfAnE4m3Ulp) {
  double worst_rel = 0;  // largest |error| / |x| among values in e4m3's normal range
  testing::for_each_round_trip(
      FormatId::fp8, Role::K,
      [&](const Codec& codec, const Rows& in, const std::vector<uint8_t>& block,
          const std::vector<float>& out) {
        const int d = in.d, T = codec.page_tokens();
        for (int t = 0; t < in.n; ++t) {
          const float* x = in.x.data() + static_cast<size_t>(t) * d;
          const float* y = out.data() + static_cast<size_t>(t) * d;
          double amax = 0;
          for (int j = 0; j < d; ++j) amax = std::fmax(amax, std::fabs(testing::saturated(x[j])));
          const double s = f16_at(block, scale_at(d, T, t));
          ASSERT_LE(s, testing::max_step(amax, 448.0));
          ASSERT_EQ(s > 0, amax > 0);
          for (int j = 0; j < d; ++j) {
            const double xs = testing::saturated(x[j]);
            const double err = std::fabs(xs - y[j]);
            ASSERT_LE(err, fp8_bound(xs, s)) << "t=" << t << " j=" << j << " scale=" << s;
            if (std::fabs(xs) >= 0x1p-6 * s) worst_rel = std::fmax(worst_rel, err / std::fabs(xs));
          }
        }
      });
  std::printf("fp8: max relative error in e4m3's normal range = %.5f (bound 2^-4 = 0.0625)\n",
              worst_rel);
}

// The token's largest magnitude is stored as e4m3's 448 (code 0x7e), within the f16 scale's
// rounding, so the whole e4m3 range is used.
TEST(Fp8Format, TokenMaxMapsTo448) {
  const int d = 64, T = 32;
  auto codec = make_codec(FormatId::fp8, CodecConfig{Role::V, d, T, 1, 0});
  const Rows in = testing::gaussian_rows(T, d, 8);
  std::vector<float> out;
  const auto block = testing::round_trip(*codec, in, out);
  for (int t = 0; t < T; ++t) {
    int arg = 0;
    for (int j = 1; j < d; ++j) {
      if (std::fabs(in.x[t * d + j]) > std::fabs(in.x[t * d + arg])) arg = j;
    }
    EXPECT_EQ(block[static_cast<size_t>(t) * d + arg] & 0x7f, 0x7e) << "t=" << t;
  }
}

TEST(Fp8Format, ByteLayoutMatchesDocs) {
  const int d = 8, T = 16;
  const std::vector<float> x = {448.0f, 1.0f, -2.0f, 0.5f, 0.0f, -448.0f, 0x1p-9f, 3.0f};
  auto codec = make_codec(FormatId::fp8, CodecConfig{Role::K, d, T, 1, 0});
  std::vector<uint8_t> b(codec->head_bytes());
  codec->encode(0, x.data(), 1, b.data());
  // Scale 1.0: the codes are e4m3 of x itself (bias 7: 1.0 = 0x38, 2.0 = 0x40, 0.5 = 0x30).
  // Keys are channel-major: channel j of token 0 at byte j * T.
  const uint8_t expected[] = {0x7e, 0x38, 0xc0, 0x30, 0x00, 0xfe, 0x01, 0x44};
  for (int j = 0; j < d; ++j) EXPECT_EQ(b[j * T], expected[j]) << "j=" << j;
  EXPECT_EQ(b[T * d], 0x00);
  EXPECT_EQ(b[T * d + 1], 0x3c);  // f16 1.0
  // Values are token-major: channel j of token 0 at byte j.
  auto v = make_codec(FormatId::fp8, CodecConfig{Role::V, d, T, 1, 0});
  b.assign(v->head_bytes(), 0);
  v->encode(0, x.data(), 1, b.data());
  for (int j = 0; j < d; ++j) EXPECT_EQ(b[j], expected[j]) << "j=" << j;
}

TEST(Fp8Format, NonFiniteInputSaturates) {
  const int d = 16, T = 16;
  auto codec = make_codec(FormatId::fp8, CodecConfig{Role::K, d, T, 1, 0});
  Rows in = testing::gaussian_rows(1, d, 3);
  in.x[0] = std::numeric_limits<float>::quiet_NaN();
  in.x[1] = std::numeric_limits<float>::infinity();
  in.x[2] = -std::numeric_limits<float>::infinity();
  std::vector<float> y;
  const auto block = testing::round_trip(*codec, in, y);
  EXPECT_EQ(y[0], 0.0f);  // e4m3 represents 0 exactly
  const double s = f16_at(block, scale_at(d, T, 0));
  EXPECT_LE(std::fabs(y[1] - 65504.0), fp8_bound(65504.0, s));
  EXPECT_LE(std::fabs(y[2] + 65504.0), fp8_bound(65504.0, s));
}

TEST(Fp8Format, ServesAnyHeadDimAtEightBitsPlusAScale) {
  EXPECT_TRUE(why_unsupported(FormatId::fp8, CodecConfig{Role::V, 12, 32, 1, 0}).empty());
  EXPECT_DOUBLE_EQ(info(FormatId::fp8).bits_per_value(128), 8.125);
  EXPECT_DOUBLE_EQ(info(FormatId::fp8).bits_per_value(64), 8.25);
}

}  // namespace
}  // namespace kvpack::format
