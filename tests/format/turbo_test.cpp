// TurboQuant MSE formats (turbo2/3/4): distortion against theory (FACTS.md and the solved
// codebooks), round trips on the standard inputs, norm correction, saturation, the documented
// byte layout, and the geometries they refuse.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/error.h"
#include "base/half.h"
#include "format/codebook.h"
#include "format/turbo_layout.h"
#include "inputs.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

struct Turbo {
  FormatId id;
  int bits;
  double facts_unit_mse;  // FACTS.md: d x MSE of the Gaussian Lloyd-Max quantizer
};
constexpr Turbo kTurbos[] = {
    {FormatId::turbo2, 2, 0.1175}, {FormatId::turbo3, 3, 0.03455}, {FormatId::turbo4, 4, 0.00950}};

double sq_norm(const float* x, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += static_cast<double>(x[j]) * x[j];
  return s;
}

// Mean of ||u - u~||^2 over `count` random unit vectors (rows of pages spread over 4 heads).
double mean_unit_mse(FormatId id, int d, int count) {
  const int n = 32, heads = 4;
  const auto codec = make_codec(id, CodecConfig{Role::V, d, n, heads, layer_seed(3, Role::V)});
  std::vector<uint8_t> block(codec->head_bytes());
  std::vector<float> out(static_cast<size_t>(n) * d);
  double sum = 0;
  for (int page = 0; page < count / n; ++page) {
    testing::Rows u = testing::gaussian_rows(n, d, 100 + page);
    for (int t = 0; t < n; ++t) {
      const double inv = 1 / std::sqrt(sq_norm(&u.x[static_cast<size_t>(t) * d], d));
      for (int j = 0; j < d; ++j) u.x[static_cast<size_t>(t) * d + j] *= static_cast<float>(inv);
    }
    codec->encode(page % heads, u.x.data(), n, block.data());
    codec->decode(page % heads, block.data(), n, out.data());
    for (size_t i = 0; i < out.size(); ++i) sum += (out[i] - u.x[i]) * (out[i] - u.x[i]);
  }
  return sum / (count / n * n);
}

// The bound: at head dim 128, within 15% of FACTS.md's d x MSE. Norm correction moves
// the figure by a few percent either way (it rescales each vector to its own norm).
TEST(Turbo, UnitVectorMseAtDim128WithinFifteenPercentOfFacts) {
  for (const Turbo& f : kTurbos) {
    const double mse = mean_unit_mse(f.id, 128, 8192);
    EXPECT_NEAR(mse, f.facts_unit_mse, 0.15 * f.facts_unit_mse) << info(f.id).name;
  }
}

// Other dims, power of two or not, against the codebook solved for that dim.
TEST(Turbo, UnitVectorMseMatchesTheCodebookAtEveryDim) {
  for (const Turbo& f : kTurbos) {
    for (int d : {64, 80, 96, 256}) {
      const double theory = codebook(d, f.bits).unit_mse();
      EXPECT_NEAR(mean_unit_mse(f.id, d, 2048), theory, 0.15 * theory)
          << info(f.id).name << " d=" << d;
    }
  }
}

// Round trips on the standard inputs: every token keeps its norm (norm correction, up to the
// f16 rounding of the stored norm), zeros stay exactly zero, and the relative squared error
// stays near the theory: page means within 25% (Gaussian, outliers), any single token within
// 5x (a vector's error fluctuates around the mean; 4x is the largest seen over 20 seeds). Below
// d = 64 a vector's error fluctuates more (few coordinates): 8x, and no page-mean bound.
TEST(Turbo, RoundTripsOnStandardInputs) {
  for (const Turbo& f : kTurbos) {
    for (int d : {8, 24, 64, 96, 128, 256}) {
      const double token_bound = d >= 64 ? 5 : 8;
      const double theory = codebook(d, f.bits).unit_mse();
      const auto codec = make_codec(f.id, CodecConfig{Role::K, d, 32, 2, 11});
      for (const auto& in : testing::standard_inputs(32, d, 21)) {
        std::vector<uint8_t> block(codec->head_bytes());
        codec->encode(1, in.x.data(), in.n, block.data());
        std::vector<float> out(in.x.size());
        codec->decode(1, block.data(), in.n, out.data());
        double page_err = 0;
        for (int t = 0; t < in.n; ++t) {
          const float* x = &in.x[static_cast<size_t>(t) * d];
          const float* y = &out[static_cast<size_t>(t) * d];
          const double n2 = sq_norm(x, d);
          if (n2 == 0) {
            for (int j = 0; j < d; ++j) ASSERT_EQ(y[j], 0.0f) << in.name;
            continue;
          }
          EXPECT_NEAR(std::sqrt(sq_norm(y, d)), std::sqrt(n2), (0x1p-11 + 1e-5) * std::sqrt(n2))
              << info(f.id).name << " d=" << d << " " << in.name << " t=" << t;
          double e = 0;
          for (int j = 0; j < d; ++j) e += (y[j] - x[j]) * (y[j] - x[j]);
          EXPECT_LE(e / n2, token_bound * theory)
              << info(f.id).name << " d=" << d << " " << in.name;
          page_err += e / n2 / in.n;
        }
        if (d >= 64 && (in.name == "gaussian" || in.name == "outlier channels")) {
          EXPECT_NEAR(page_err, theory, 0.25 * theory)
              << info(f.id).name << " d=" << d << " " << in.name;
        }
      }
    }
  }
}

// Documented saturation: NaN -> 0, +-Inf and finite values beyond f16 -> +-65504, before the
// norm is taken; the stored norm itself saturates at 65504.
TEST(Turbo, NonFiniteInputSaturatesAsDocumented) {
  const int d = 64;
  const auto codec = make_codec(FormatId::turbo4, CodecConfig{Role::V, d, 16, 1, 5});
  testing::Rows x = testing::gaussian_rows(1, d, 8);
  testing::Rows sat = x;
  x.x[3] = std::numeric_limits<float>::quiet_NaN();
  sat.x[3] = 0.0f;
  x.x[5] = std::numeric_limits<float>::infinity();
  sat.x[5] = kF16Max;
  x.x[7] = -3e38f;
  sat.x[7] = -kF16Max;
  std::vector<uint8_t> a(codec->head_bytes()), b(codec->head_bytes());
  codec->encode(0, x.x.data(), 1, a.data());
  codec->encode(0, sat.x.data(), 1, b.data());
  EXPECT_EQ(a, b);

  std::vector<float> inf(static_cast<size_t>(d), std::numeric_limits<float>::infinity());
  codec->encode(0, inf.data(), 1, a.data());
  std::vector<float> out(static_cast<size_t>(d));
  codec->decode(0, a.data(), 1, out.data());
  // ||x|| / ||c|| is far beyond f16: the stored norm is 65504, so the decoded norm is
  // 65504 * ||c[idx]||.
  const TurboLayout layout{d, 16, 4, false, false};  // turbo4 values
  EXPECT_EQ(layout.norm(a.data(), 0), f32_to_f16(kF16Max));
  std::vector<uint8_t> idx(static_cast<size_t>(d));
  layout.load_codes(a.data(), 0, idx.data());
  double c2 = 0;
  for (uint8_t i : idx) c2 += codebook(d, 4).centroids[i] * codebook(d, 4).centroids[i];
  EXPECT_NEAR(std::sqrt(sq_norm(out.data(), d)), kF16Max * std::sqrt(c2), 1e-5 * kF16Max);
}

// The layout of docs/formats.md: f16 norms first, then the packed codes, padding zeroed.
TEST(Turbo, BlockLayoutIsAsDocumented) {
  const int d = 128, t = 32;
  const auto codec = make_codec(FormatId::turbo3, CodecConfig{Role::K, d, t, 1, 2});
  EXPECT_EQ(info(FormatId::turbo3).payload_bytes(d, t), 2u * t + 3u * d * t / 8);
  EXPECT_DOUBLE_EQ(info(FormatId::turbo2).bits_per_value(128), 2.125);
  EXPECT_DOUBLE_EQ(info(FormatId::turbo3).bits_per_value(64), 3.25);
  EXPECT_DOUBLE_EQ(info(FormatId::turbo4).bits_per_value(256), 4.0625);
  const testing::Rows x = testing::gaussian_rows(t, d, 4);
  std::vector<uint8_t> block(codec->head_bytes(), 0xee);
  codec->encode(0, x.x.data(), t, block.data());
  const TurboLayout layout{d, t, 3, false, true};
  const Codebook& cb = codebook(d, 3);
  std::vector<uint8_t> idx(static_cast<size_t>(d));
  for (int k = 0; k < t; ++k) {
    // Stored norm = ||x|| / ||c[idx]||, read at the documented offset, little-endian f16.
    const float stored = f16_to_f32(static_cast<uint16_t>(block[2 * k] | (block[2 * k + 1] << 8)));
    // 3-bit keys: a 2-bit plane of the low bits (lines of 16 channels, [d/16][T][4]: channel
    // 16o + 4m + i at bits 2m of byte o*4T + 4k + i), then a 1-bit plane of bit 2 (lines of 32
    // channels: channel 32o + 4m + i at bit m of byte o*4T + 4k + i).
    const uint8_t* low = block.data() + 2 * t;
    const uint8_t* high = low + static_cast<size_t>(t) * d / 4;
    for (int j = 0; j < d; ++j) {
      const int lo = (low[j / 16 * 4 * t + 4 * k + j % 4] >> (j % 16 / 4 * 2)) & 3;
      const int hi = (high[j / 32 * 4 * t + 4 * k + j % 4] >> (j % 32 / 4)) & 1;
      idx[j] = static_cast<uint8_t>(lo | hi << 2);
    }
    double c2 = 0;
    for (int j = 0; j < d; ++j) c2 += cb.centroids[idx[j]] * cb.centroids[idx[j]];
    const double expect = std::sqrt(sq_norm(&x.x[static_cast<size_t>(k) * d], d) / c2);
    EXPECT_NEAR(stored, expect, 0x1p-11 * expect + 1e-6);
  }
  for (size_t i = layout.payload_bytes(); i < block.size(); ++i) EXPECT_EQ(block[i], 0);
}

// turbo4 keys: codes interleaved by channel octets across tokens; values: token quads in q4's
// value arrangement (docs/formats.md). Both decode the same numbers.
TEST(Turbo, Turbo4KeyCodesAreChannelInterleaved) {
  const int d = 64, t = 16;
  const auto k = make_codec(FormatId::turbo4, CodecConfig{Role::K, d, t, 1, 3});
  const auto v = make_codec(FormatId::turbo4, CodecConfig{Role::V, d, t, 1, 3});
  const testing::Rows x = testing::gaussian_rows(3, d, 12);
  std::vector<uint8_t> kb(k->head_bytes()), vb(v->head_bytes());
  k->encode(0, x.x.data(), 3, kb.data());
  v->encode(0, x.x.data(), 3, vb.data());
  std::vector<uint8_t> idx(static_cast<size_t>(d));
  for (int tok = 0; tok < 3; ++tok) {
    // Values: token quads; per block of 32 codes, lane l holds code l and code l + 16.
    for (int j = 0; j < d; ++j) {
      const uint8_t byte =
          vb[2 * t + (static_cast<size_t>(tok / 4) * (d / 2) + j / 32 * 16 + j % 16) * 4 + tok % 4];
      idx[j] = j % 32 < 16 ? (byte & 0xf) : (byte >> 4);
    }
    for (int j = 0; j < d; ++j) {
      const uint8_t byte = kb[2 * t + (static_cast<size_t>(j / 8) * t + tok) * 4 + j % 4];
      EXPECT_EQ(j % 8 < 4 ? (byte & 0xf) : (byte >> 4), idx[j]) << "token " << tok << " j " << j;
    }
  }
  std::vector<float> ko(3 * static_cast<size_t>(d)), vo(ko.size());
  k->decode(0, kb.data(), 3, ko.data());
  v->decode(0, vb.data(), 3, vo.data());
  EXPECT_EQ(ko, vo);
}

// Every plane arrangement stores and loads every code (and QJL sign) back, for head dims with
// partial lines and blocks, and token counts not a multiple of 4; writing one token leaves the
// others' bits alone.
TEST(TurboLayout, PlanesRoundTripEveryCode) {
  for (int d : {8, 24, 40, 64, 72, 136, 200, 256}) {
    for (int T : {5, 16, 32}) {
      for (int bits = 1; bits <= 4; ++bits) {
        for (bool key : {false, true}) {
          for (bool qjl : {false, true}) {
            if (qjl && (!key || bits < 2 || bits > 3)) continue;
            const TurboLayout l{d, T, bits, qjl, key};
            std::vector<uint8_t> block(l.payload_bytes(), 0);
            Rng rng(static_cast<uint64_t>(d * 1000 + T * 10 + bits));
            std::vector<std::vector<uint8_t>> codes(static_cast<size_t>(T)), signs(codes.size());
            for (int t = 0; t < T; ++t) {
              codes[t].resize(static_cast<size_t>(d));
              signs[t].resize(static_cast<size_t>(d) / 8);
              for (auto& c : codes[t]) c = static_cast<uint8_t>(rng.below(1u << bits));
              for (auto& s : signs[t]) s = static_cast<uint8_t>(rng.below(256));
              l.store_codes(block.data(), t, codes[t].data());
              if (qjl) l.store_signs(block.data(), t, signs[t].data());
            }
            std::vector<uint8_t> c(static_cast<size_t>(d)), s(static_cast<size_t>(d) / 8);
            for (int t = 0; t < T; ++t) {
              l.load_codes(block.data(), t, c.data());
              EXPECT_EQ(c, codes[t]) << "d " << d << " T " << T << " bits " << bits << " key "
                                     << key << " qjl " << qjl << " token " << t;
              if (!qjl) continue;
              l.load_signs(block.data(), t, s.data());
              EXPECT_EQ(s, signs[t]) << "d " << d << " T " << T << " bits " << bits;
            }
          }
        }
      }
    }
  }
}

TEST(TurboLayout, PacksCodesLsbFirst) {
  // 3-bit codes 1..7,0, code j at bits [3j, 3j+3) of a little-endian bit string:
  // 1 | 2<<3 | 3<<6 | 4<<9 | 5<<12 | 6<<15 | 7<<18 = 0x1f58d1.
  const uint8_t codes[8] = {1, 2, 3, 4, 5, 6, 7, 0};
  uint8_t packed[3];
  pack_codes(codes, 8, 3, packed);
  EXPECT_EQ(packed[0], 0xd1);
  EXPECT_EQ(packed[1], 0x58);
  EXPECT_EQ(packed[2], 0x1f);
  const uint8_t nibbles[2] = {0x3, 0xa};
  pack_codes(nibbles, 2, 4, packed);
  EXPECT_EQ(packed[0], 0xa3);
  for (int bits = 1; bits <= 4; ++bits) {
    Rng rng(static_cast<uint64_t>(bits));
    std::vector<uint8_t> in(256), out(256), bytes(256 * bits / 8);
    for (auto& v : in) v = static_cast<uint8_t>(rng.below(1u << bits));
    pack_codes(in.data(), 256, bits, bytes.data());
    unpack_codes(bytes.data(), 256, bits, out.data());
    EXPECT_EQ(in, out) << bits;
  }
}

TEST(Turbo, HeadsUseDifferentRotations) {
  const int d = 64;
  const auto codec = make_codec(FormatId::turbo4, CodecConfig{Role::K, d, 16, 2, 9});
  const testing::Rows x = testing::gaussian_rows(4, d, 1);
  std::vector<uint8_t> a(codec->head_bytes()), b(codec->head_bytes());
  codec->encode(0, x.x.data(), 4, a.data());
  codec->encode(1, x.x.data(), 4, b.data());
  EXPECT_NE(a, b);
}

TEST(Turbo, RefusesHeadDimsItCannotServe) {
  for (FormatId id : {FormatId::turbo2, FormatId::turbo3, FormatId::turbo4, FormatId::turbo3_qjl,
                      FormatId::turbo4_qjl}) {
    for (int d : {4, 12, 100, 264, 512}) {
      const CodecConfig c{Role::K, d, 32, 1, 0};
      EXPECT_NE(why_unsupported(id, c).find("multiple of 8 in 8..256"), std::string::npos)
          << info(id).name << " d=" << d;
      EXPECT_THROW(make_codec(id, c), Error);
    }
    for (int d = 8; d <= 256; d += 8) {
      EXPECT_EQ(why_unsupported(id, CodecConfig{Role::K, d, 32, 1, 0}), "") << d;
    }
  }
}

}  // namespace
}  // namespace kvpack::format
