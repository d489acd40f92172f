// The weight codecs where the shared ggml vectors say nothing: IQ4_XS (no shared vectors: the test
// builds blocks field by field and derives every value from the type's definition, written here
// independently of the codec), round trips of every type on random data, zero and non-finite
// blocks, and the q8_K activation quantizer's edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "base/half.h"
#include "base/rng.h"
#include "model/quant_ref.h"

namespace kvpack::model {
namespace {

std::string name(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}

std::vector<float> gaussian(size_t n, uint64_t seed, double sigma = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * sigma);
  return v;
}

// IQ4_XS from its definition (ggml's block_iq4_xs): {half d; u16 scales_h; u8 scales_l[4];
// u8 qs[128]}; group g (32 values) has the 6-bit scale ls = (scales_l[g/2] >> 4*(g%2)) & 15 |
// ((scales_h >> 2g) & 3) << 4 and holds 16 bytes qs[16g..16g+15], value j < 16 in the low nibble
// of byte j, value j >= 16 in the high nibble of byte j - 16; x = d * (ls - 32) * L[nibble] with
// IQ4_NL's 16 levels.
TEST(QuantCodec, Iq4XsFromItsDefinition) {
  const int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                           1,    13,   25,  38,  53,  69,  89,  113};
  Rng rng(21);
  const int n_blocks = 64;
  std::vector<uint8_t> bytes(n_blocks * 136);
  std::vector<float> want(n_blocks * 256);
  for (int b = 0; b < n_blocks; ++b) {
    uint8_t* p = bytes.data() + b * 136;
    for (int i = 2; i < 136; ++i) p[i] = static_cast<uint8_t>(rng.below(256));
    // Scales from tiny (f16 subnormal) to large, of both signs.
    const float d = static_cast<float>((rng.uniform() - 0.5) * std::pow(10.0, rng.below(9) - 6.0));
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(p, &dh, 2);
    const uint16_t scales_h = static_cast<uint16_t>(p[2] | (p[3] << 8));
    for (int g = 0; g < 8; ++g) {
      const int ls = ((p[4 + g / 2] >> (4 * (g % 2))) & 15) | (((scales_h >> (2 * g)) & 3) << 4);
      for (int j = 0; j < 32; ++j) {
        const uint8_t byte = p[8 + 16 * g + (j % 16)];
        const int nib = j < 16 ? byte & 15 : byte >> 4;
        // ggml's order: (d * (ls - 32)) * level, each product exact in f32.
        want[b * 256 + g * 32 + j] =
            (f16_to_f32(dh) * static_cast<float>(ls - 32)) * static_cast<float>(kLevels[nib]);
      }
    }
  }
  std::vector<float> got(want.size());
  dequantize_row_ref(GgmlType::IQ4_XS, bytes.data(), got.data(), static_cast<int64_t>(got.size()));
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
}

// An IQ4_XS group whose scale is exactly an IQ4_NL block's is that block: the two share the grid.
TEST(QuantCodec, Iq4XsGroupEqualsIq4NlBlock) {
  Rng rng(22);
  BlockIQ4_XS xs{};
  xs.d = f32_to_f16(0.0078125f);  // 2^-7: d * (ls - 32) is exact in f16 for every ls
  for (auto& q : xs.qs) q = static_cast<uint8_t>(rng.below(256));
  for (auto& s : xs.scales_l) s = static_cast<uint8_t>(rng.below(256));
  xs.scales_h = static_cast<uint16_t>(rng.below(65536));
  float from_xs[256];
  dequantize_row_ref(GgmlType::IQ4_XS, &xs, from_xs, 256);
  for (int g = 0; g < 8; ++g) {
    BlockIQ4_NL nl{};
    const int ls = iq4xs_scale(g, xs.scales_l[g / 2], xs.scales_h);
    nl.d = f32_to_f16(0.0078125f * static_cast<float>(ls - 32));
    std::memcpy(nl.qs, xs.qs + 16 * g, 16);
    float from_nl[32];
    dequantize_row_ref(GgmlType::IQ4_NL, &nl, from_nl, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(from_nl[j], from_xs[32 * g + j]) << g << " " << j;
  }
}

// Every quantized type round-trips random data with the relative rmse its bits allow (loose
// ceilings: a packing bug gives errors of order 1).
TEST(QuantCodec, RoundTripErrorFitsTheBits) {
  const std::pair<GgmlType, double> kCeiling[] = {
      {GgmlType::Q8_0, 0.006}, {GgmlType::Q4_0, 0.12},  {GgmlType::Q4_1, 0.10},
      {GgmlType::Q5_0, 0.06},  {GgmlType::Q5_1, 0.05},  {GgmlType::IQ4_NL, 0.11},
      {GgmlType::Q2_K, 0.42},  {GgmlType::Q3_K, 0.22},  {GgmlType::Q4_K, 0.11},
      {GgmlType::Q5_K, 0.055}, {GgmlType::Q6_K, 0.028}, {GgmlType::IQ4_XS, 0.11},
      {GgmlType::F16, 0.0005}, {GgmlType::BF16, 0.004},
  };
  const int64_t n = 256 * 16;
  const std::vector<float> x = gaussian(n, 23, 0.02);
  for (const auto& [t, ceiling] : kCeiling) {
    std::vector<uint8_t> q(weight_row_bytes(t, n));
    std::vector<float> back(n);
    quantize_row_ref(t, x.data(), q.data(), n);
    dequantize_row_ref(t, q.data(), back.data(), n);
    double se = 0, ss = 0;
    for (int64_t j = 0; j < n; ++j) {
      se += (back[j] - x[j]) * static_cast<double>(back[j] - x[j]);
      ss += x[j] * static_cast<double>(x[j]);
    }
    const double rel = std::sqrt(se / ss);
    EXPECT_LE(rel, ceiling) << name(t);
    RecordProperty(name(t) + "_relative_rmse", std::to_string(rel));
  }
}

TEST(QuantCodec, ZeroRowsStayZero) {
  for (const WeightTypeTraits& tr : weight_types()) {
    const int64_t n = 512;
    const std::vector<float> zero(n, 0.0f);
    std::vector<uint8_t> q(weight_row_bytes(tr.type, n));
    std::vector<float> back(n, 1.0f);
    quantize_row_ref(tr.type, zero.data(), q.data(), n);
    dequantize_row_ref(tr.type, q.data(), back.data(), n);
    for (float v : back) ASSERT_EQ(v, 0.0f) << name(tr.type);
  }
}

// A block holding NaN or Inf, or one whose scale does not fit f16, dequantizes to NaN; the other
// blocks of the row are unaffected.
TEST(QuantCodec, UnrepresentableBlocksTurnNan) {
  for (const WeightTypeTraits& tr : weight_types()) {
    if (tr.act == ActType::kF32) continue;
    const int64_t n = 2 * 256;
    for (const float bad : {NAN, INFINITY, 1e12f}) {
      std::vector<float> x = gaussian(n, 24);
      x[3] = bad;
      std::vector<uint8_t> q(weight_row_bytes(tr.type, n));
      std::vector<float> back(n);
      quantize_row_ref(tr.type, x.data(), q.data(), n);
      dequantize_row_ref(tr.type, q.data(), back.data(), n);
      for (int j = 0; j < tr.block; ++j)
        ASSERT_TRUE(std::isnan(back[j])) << name(tr.type) << " " << bad;
      for (int64_t j = 256; j < n; ++j) ASSERT_TRUE(std::isfinite(back[j])) << name(tr.type);
    }
  }
}

TEST(QuantCodec, Q8KActivationEdgeCases) {
  std::vector<float> x(4 * 256, 0.0f);
  // Block 1: exact ties of iscale * x = k + 0.5 round to even (ggml's nearest_int).
  x[256] = -127.0f;  // the signed maximum: iscale = 1
  x[257] = 2.5f;
  x[258] = 3.5f;
  x[259] = -2.5f;
  // Block 2: positive maximum, so d < 0 as in ggml.
  for (int j = 0; j < 256; ++j) x[512 + j] = 0.01f * static_cast<float>(j % 17);
  // Block 3: values so small that 127 / max overflows f32: quantized to zero.
  x[768] = 1e-38f;
  BlockQ8_K q[4];
  quantize_row_q8_K_ref(x.data(), q, static_cast<int64_t>(x.size()));
  EXPECT_EQ(q[0].d, 0.0f);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(q[0].qs[j], 0);
  EXPECT_EQ(q[1].d, 1.0f);
  EXPECT_EQ(q[1].qs[0], -127);
  EXPECT_EQ(q[1].qs[1], 2);
  EXPECT_EQ(q[1].qs[2], 4);
  EXPECT_EQ(q[1].qs[3], -2);
  EXPECT_EQ(q[1].bsums[0], -127 + 2 + 4 - 2);
  EXPECT_LT(q[2].d, 0.0f);
  EXPECT_EQ(q[2].qs[16], -127);
  int sum = 0;
  for (int j = 0; j < 16; ++j) sum += q[2].qs[16 + j];
  EXPECT_EQ(q[2].bsums[1], sum);
  EXPECT_EQ(q[3].d, 0.0f);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(q[3].qs[j], 0);
  x[600] = NAN;
  quantize_row_q8_K_ref(x.data(), q, static_cast<int64_t>(x.size()));
  EXPECT_TRUE(std::isnan(q[2].d));
  EXPECT_EQ(q[1].d, 1.0f);
}

// The per-value bound of the activation quantizers holds on adversarial blocks (ties, huge
// outliers beside tiny values, f16 subnormal q8_0 scales).
TEST(QuantCodec, ActivationErrorWithinStepBound) {
  for (const GgmlType t : {GgmlType::Q8_0, GgmlType::Q6_K}) {
    const ActType a = weight_traits(t).act;
    const int64_t n = 1024;
    std::vector<float> x = gaussian(n, 25);
    x[10] = 5e5f;
    for (int j = 300; j < 400; ++j) x[j] = 1e-6f * static_cast<float>(j - 350);
    for (int j = 512; j < 600; ++j) x[j] = 0.5f * static_cast<float>(j - 556);
    // A weight row of ones: the bound is then the sum of the per-value step bounds.
    std::vector<float> ones(n, 1.0f);
    std::vector<uint8_t> w(weight_row_bytes(t, n));
    quantize_row_ref(t, ones.data(), w.data(), n);
    std::vector<float> wf(n);
    dequantize_row_ref(t, w.data(), wf.data(), n);
    std::vector<uint8_t> xq(n / act_block_size(a) * act_block_bytes(a));
    quantize_row_act_ref(a, x.data(), xq.data(), n);
    std::vector<float> xd(n);
    dequantize_row_act_ref(a, xq.data(), xd.data(), n);
    double err = 0;
    for (int64_t j = 0; j < n; ++j) err += std::fabs(wf[j]) * std::fabs(xd[j] - x[j]);
    EXPECT_LE(err, q8_activation_error_bound(t, w.data(), x.data(), n)) << name(t);
    EXPECT_GT(err, 0.0);
  }
}

}  // namespace
}  // namespace kvpack::model
