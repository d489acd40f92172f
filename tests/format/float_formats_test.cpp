// Round-trip bounds for f32, f16 and bf16: exact, and half an ulp of the stored type.
#include <gtest/gtest.h>

#include <cmath>

#include "inputs.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

// Relative half-ulp of the stored mantissa (f16: 10 bits, bf16: 7 bits).
double half_ulp(FormatId id) {
  switch (id) {
    case FormatId::f32:
      return 0;
    case FormatId::f16:
      return 0x1p-11;
    default:
      return 0x1p-8;
  }
}

TEST(FloatFormats, RoundTripWithinHalfUlp) {
  for (FormatId id : {FormatId::f32, FormatId::f16, FormatId::bf16}) {
    for (int d : {8, 64, 128, 256}) {
      auto codec = make_codec(id, CodecConfig{Role::V, d, 32, 1, 0});
      for (const auto& in : testing::standard_inputs(32, d, 7)) {
        std::vector<uint8_t> block(codec->head_bytes());
        codec->encode(0, in.x.data(), in.n, block.data());
        std::vector<float> out(in.x.size());
        codec->decode(0, block.data(), in.n, out.data());
        for (size_t i = 0; i < out.size(); ++i) {
          const double x = in.x[i];
          // f16 subnormals have an absolute step of 2^-24.
          const double bound = half_ulp(id) * std::fabs(x) + (id == FormatId::f16 ? 0x1p-25 : 0);
          ASSERT_LE(std::fabs(out[i] - x), bound)
              << info(id).name << " d=" << d << " " << in.name << " i=" << i;
        }
      }
    }
  }
}

TEST(FloatFormats, SaturateInsteadOfOverflowing) {
  auto f16 = make_codec(FormatId::f16, CodecConfig{Role::K, 8, 16, 1, 0});
  std::vector<float> x(8, 1e6f);
  x[1] = -1e6f;
  std::vector<uint8_t> block(f16->head_bytes());
  f16->encode(0, x.data(), 1, block.data());
  std::vector<float> out(8);
  f16->decode(0, block.data(), 1, out.data());
  EXPECT_EQ(out[0], 65504.0f);
  EXPECT_EQ(out[1], -65504.0f);
}

}  // namespace
}  // namespace kvpack::format
