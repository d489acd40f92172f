// The prepared query of the integer K kernels: the SIMD rounding (int_query.cpp) must give the
// scalar reference's bytes exactly on every target: codes, float codes, scales and sums, for
// group sizes below, at and above the vector width, with NaN, Inf, zeros, denormals and huge
// outliers in the rows. The reference itself is pinned by hand-made cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention/int_query.h"
#include "base/rng.h"
#include "every_target.h"

namespace kvpack::attention::detail {
namespace {

std::vector<uint8_t> prepared(const IntQueryLayout& l, const std::vector<float>& q, bool simd) {
  std::vector<uint8_t> row(l.row_bytes(), 0xA5);  // padding keeps its fill in both
  if (simd) {
    quantize_query(l, q.data(), row.data());
  } else {
    quantize_query_reference(l, q.data(), row.data());
  }
  return row;
}

TEST(IntQuery, ReferenceRoundsHalfToEvenClampsAndZeroesNaN) {
  const IntQueryLayout l{8, 8};
  // amax 127 -> scale 1: codes are q rounded to nearest even.
  const std::vector<float> q = {
      127.0f, 0.5f, 1.5f, -2.5f, -127.0f, 3.49f, std::numeric_limits<float>::quiet_NaN(), -0.0f};
  const std::vector<uint8_t> row = prepared(l, q, false);
  const auto* codes = reinterpret_cast<const int8_t*>(row.data() + l.codes());
  const int8_t want[8] = {127, 0, 2, -2, -127, 3, 0, 0};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(codes[j], want[j]) << "channel " << j;
  EXPECT_EQ(reinterpret_cast<const float*>(row.data() + l.scales())[0], 1.0f);
  EXPECT_EQ(reinterpret_cast<const int32_t*>(row.data() + l.sums())[0], 127 + 2 - 2 - 127 + 3);
}

TEST(IntQuery, AllZeroGroupHasScaleZeroAndCodesZero) {
  const IntQueryLayout l{64, 32};
  std::vector<float> q(64, 0.0f);
  q[40] = 3.0f;  // the second group only
  for (bool simd : {false, true}) {
    const std::vector<uint8_t> row = prepared(l, q, simd);
    const auto* scale = reinterpret_cast<const float*>(row.data() + l.scales());
    EXPECT_EQ(scale[0], 0.0f);
    EXPECT_EQ(scale[1], 3.0f / 127.0f);
    EXPECT_EQ(reinterpret_cast<const int8_t*>(row.data() + l.codes())[40], 127);
  }
}

TEST(IntQuery, SimdMatchesTheReferenceBitForBitOnEveryTarget) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Shape {
    int d, group;
  };
  const Shape shapes[] = {{128, 128}, {128, 32}, {64, 64}, {256, 32}, {80, 16},  {96, 96},
                          {24, 8},    {12, 4},   {7, 7},   {5, 1},    {256, 256}};
  testing::on_every_target([&](const std::string&, bool) {
    for (const Shape& s : shapes) {
      const IntQueryLayout l{s.d, s.group};
      for (int kind = 0; kind < 6; ++kind) {
        Rng rng(static_cast<uint64_t>(s.d) * 977 + s.group * 13 + kind);
        std::vector<float> q(static_cast<size_t>(s.d));
        for (auto& v : q) v = static_cast<float>(rng.normal());
        if (kind == 1) {  // a huge outlier per group
          for (int j = 0; j < s.d; j += s.group) q[j + s.group / 2] = 3e38f;
        } else if (kind == 2) {  // NaN, Inf and signed zeros scattered
          const float specials[] = {nan, inf, -inf, 0.0f, -0.0f};
          for (int j = 0; j < s.d; j += 3) q[j] = specials[(j / 3) % 5];
        } else if (kind == 3) {  // denormals
          for (auto& v : q) v *= 1e-40f;
        } else if (kind == 4) {  // exact halves: ties to even after scaling by 127 / amax
          for (int j = 0; j < s.d; ++j) q[j] = static_cast<float>((j % 255) - 127) * 0.5f;
          for (int j = 0; j < s.d; j += s.group) q[j] = 127.0f;  // scale 1: the halves stay
        } else if (kind == 5) {                                  // all zero
          std::fill(q.begin(), q.end(), 0.0f);
        }
        const std::vector<uint8_t> want = prepared(l, q, false);
        const std::vector<uint8_t> got = prepared(l, q, true);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size()), 0)
            << "d " << s.d << " group " << s.group << " kind " << kind;
      }
    }
  });
}

}  // namespace
}  // namespace kvpack::attention::detail
