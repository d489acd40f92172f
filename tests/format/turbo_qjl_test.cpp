// TurboQuant QJL key formats (turbo3_qjl, turbo4_qjl): logits unbiased for <q, k>, the MSE part
// identical to turbo(b-1), the residual measured against what decode() returns, and the decoded
// error at its theoretical size.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "base/error.h"
#include "base/half.h"
#include "format/codebook.h"
#include "format/turbo_layout.h"
#include "inputs.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

struct Qjl {
  FormatId id;
  FormatId mse_part;  // the MSE format its first b-1 bits reproduce
  int bits;
};
constexpr Qjl kQjls[] = {{FormatId::turbo3_qjl, FormatId::turbo2, 3},
                         {FormatId::turbo4_qjl, FormatId::turbo3, 4}};

struct ErrorStats {
  double mean = 0;
  double se = 0;  // standard error of the mean
};

// Error of score(q, k) against <q, k> over seeds x per_seed pairs. Each seed is a fresh layer
// seed (fresh rotation and sketch S: the expectation the estimator is unbiased over); pairs under
// one seed share S, so the standard error comes from the per-seed means, which are independent.
// q = k + g with g independent, so <q, k> is large and a shrinking (biased) estimator shows up.
ErrorStats logit_errors(FormatId id, int d, int seeds, int per_seed) {
  double sum = 0, sum2 = 0;
  std::vector<float> q(static_cast<size_t>(per_seed) * d);  // [per_seed][d]
  std::vector<float> logits(static_cast<size_t>(per_seed) * per_seed);
  for (int s = 0; s < seeds; ++s) {
    const auto codec =
        make_codec(id, CodecConfig{Role::K, d, per_seed, 1, layer_seed(s, Role::K, 0x9e37)});
    const testing::Rows k = testing::gaussian_rows(per_seed, d, 1000 + s);
    const testing::Rows g = testing::gaussian_rows(per_seed, d, 900000 + s);
    std::vector<uint8_t> block(codec->head_bytes());
    codec->encode(0, k.x.data(), per_seed, block.data());
    std::vector<float> qp(codec->query_floats() * per_seed);
    for (size_t i = 0; i < q.size(); ++i) q[i] = k.x[i] + g.x[i];
    for (int t = 0; t < per_seed; ++t) {
      codec->prepare_query(0, &q[static_cast<size_t>(t) * d], &qp[t * codec->query_floats()]);
    }
    codec->score(block.data(), per_seed, qp.data(), per_seed, logits.data(), per_seed);
    double seed_err = 0;
    for (int t = 0; t < per_seed; ++t) {
      double ref = 0;
      for (int j = 0; j < d; ++j) {
        ref += static_cast<double>(q[static_cast<size_t>(t) * d + j]) * k.x[t * d + j];
      }
      seed_err += (logits[t * per_seed + t] - ref) / per_seed;  // query t against key t
    }
    sum += seed_err;
    sum2 += seed_err * seed_err;
  }
  ErrorStats st;
  st.mean = sum / seeds;
  st.se = std::sqrt((sum2 / seeds - st.mean * st.mean) / seeds);
  return st;
}

TEST(TurboQjl, InnerProductsAreUnbiased) {
  for (const Qjl& f : kQjls) {
    const ErrorStats s = logit_errors(f.id, 128, 1000, 10);  // 10^4 pairs
    EXPECT_LT(std::fabs(s.mean), 3 * s.se)
        << info(f.id).name << ": mean error " << s.mean << ", standard error " << s.se;
  }
}

// The same measurement detects the MSE quantizer's bias, so the test above can fail.
TEST(TurboQjl, MseOnlyLogitsAreDetectablyBiased) {
  const ErrorStats s = logit_errors(FormatId::turbo4, 128, 200, 10);
  EXPECT_GT(std::fabs(s.mean), 10 * s.se) << s.mean << " " << s.se;
}

// The first b-1 bits are exactly turbo(b-1): same stored norms and codes, at the layout's
// offsets (norms at 0, codes after the norms and gammas).
TEST(TurboQjl, MsePartIsTurboOfOneBitLess) {
  const int d = 96, t = 32;
  for (const Qjl& f : kQjls) {
    const CodecConfig config{Role::K, d, t, 2, 42};
    const auto qjl = make_codec(f.id, config);
    const auto mse = make_codec(f.mse_part, config);
    const testing::Rows x = testing::outlier_rows(t, d, 3);
    std::vector<uint8_t> a(qjl->head_bytes()), b(mse->head_bytes());
    qjl->encode(1, x.x.data(), t, a.data());
    mse->encode(1, x.x.data(), t, b.data());
    const TurboLayout la{d, t, f.bits - 1, true, true}, lb{d, t, f.bits - 1, false, true};
    std::vector<uint8_t> ca(static_cast<size_t>(d)), cb(ca.size());
    for (int k = 0; k < t; ++k) {
      EXPECT_EQ(la.norm(a.data(), k), lb.norm(b.data(), k));
      la.load_codes(a.data(), k, ca.data());
      lb.load_codes(b.data(), k, cb.data());
      EXPECT_EQ(ca, cb) << "token " << k;
    }
  }
}

// gamma = ||x - x~_mse|| where x~_mse is what turbo(b-1) decodes (f16-rounded norm included);
// and the decoded key's error is (pi/2 - 1/d) ||r||^2 on average (E||r - g S^T z||^2, with
// g = ||r|| sqrt(pi/2)/d and z = sign(S r), worked out in docs/formats.md).
TEST(TurboQjl, ResidualAndDecodedErrorMatchTheory) {
  const int d = 128, t = 32, pages = 64;
  for (const Qjl& f : kQjls) {
    const CodecConfig config{Role::K, d, t, 1, 7};
    const auto qjl = make_codec(f.id, config);
    const auto mse = make_codec(f.mse_part, config);
    const TurboLayout layout{d, t, f.bits - 1, true, true};
    std::vector<uint8_t> a(qjl->head_bytes()), b(mse->head_bytes());
    std::vector<float> xq(static_cast<size_t>(t) * d), xm(xq.size());
    double err = 0, r2 = 0;
    for (int p = 0; p < pages; ++p) {
      const testing::Rows x = testing::gaussian_rows(t, d, 50 + p);
      qjl->encode(0, x.x.data(), t, a.data());
      mse->encode(0, x.x.data(), t, b.data());
      qjl->decode(0, a.data(), t, xq.data());
      mse->decode(0, b.data(), t, xm.data());
      for (int k = 0; k < t; ++k) {
        double rk = 0;
        for (int j = 0; j < d; ++j) {
          const size_t i = static_cast<size_t>(k) * d + j;
          rk += (x.x[i] - xm[i]) * (x.x[i] - xm[i]);
          err += (x.x[i] - xq[i]) * (x.x[i] - xq[i]);
        }
        const float gamma = f16_to_f32(layout.gamma(a.data(), k));
        EXPECT_NEAR(gamma, std::sqrt(rk), 0x1p-11 * std::sqrt(rk) + 1e-4);
        r2 += rk;
      }
    }
    EXPECT_NEAR(err / r2, std::numbers::pi / 2 - 1.0 / d, 0.05) << info(f.id).name;
  }
}

// Standard inputs: zeros stay zero, and every token's relative error stays within 5x the
// expected (pi/2) x (MSE of b-1 bits).
TEST(TurboQjl, RoundTripsOnStandardInputs) {
  for (const Qjl& f : kQjls) {
    for (int d : {64, 96, 128, 256}) {
      const double expected = std::numbers::pi / 2 * codebook(d, f.bits - 1).unit_mse();
      const auto codec = make_codec(f.id, CodecConfig{Role::K, d, 32, 1, 3});
      for (const auto& in : testing::standard_inputs(32, d, 77)) {
        std::vector<uint8_t> block(codec->head_bytes());
        codec->encode(0, in.x.data(), in.n, block.data());
        std::vector<float> out(in.x.size());
        codec->decode(0, block.data(), in.n, out.data());
        for (int k = 0; k < in.n; ++k) {
          double e = 0, n2 = 0;
          for (int j = 0; j < d; ++j) {
            const size_t i = static_cast<size_t>(k) * d + j;
            e += (out[i] - in.x[i]) * (out[i] - in.x[i]);
            n2 += static_cast<double>(in.x[i]) * in.x[i];
          }
          if (n2 == 0) {
            EXPECT_EQ(e, 0.0) << in.name;
          } else {
            EXPECT_LE(e / n2, 5 * expected) << info(f.id).name << " d=" << d << " " << in.name;
          }
        }
      }
    }
  }
}

TEST(TurboQjl, PreparedQueryIsRotationThenSketch) {
  const int d = 64;
  const auto qjl = make_codec(FormatId::turbo4_qjl, CodecConfig{Role::K, d, 16, 2, 5});
  const auto mse = make_codec(FormatId::turbo3, CodecConfig{Role::K, d, 16, 2, 5});
  ASSERT_EQ(qjl->query_floats(), 2u * d);
  const testing::Rows q = testing::gaussian_rows(2, d, 1);
  std::vector<float> a(2 * d), b(d), sum(2 * d), both(d);
  qjl->prepare_query(1, q.x.data(), a.data());
  mse->prepare_query(1, q.x.data(), b.data());
  for (int j = 0; j < d; ++j) EXPECT_EQ(a[j], b[j]);  // first half: the head's rotation
  // Second half: S q, linear in q.
  for (int j = 0; j < d; ++j) both[j] = q.x[j] + q.x[d + j];
  qjl->prepare_query(1, both.data(), sum.data());
  std::vector<float> a2(2 * d);
  qjl->prepare_query(1, q.x.data() + d, a2.data());
  for (int j = d; j < 2 * d; ++j) EXPECT_NEAR(sum[j], a[j] + a2[j], 1e-4 * (1 + std::fabs(sum[j])));
}

TEST(TurboQjl, KeysOnly) {
  for (const Qjl& f : kQjls) {
    const CodecConfig v{Role::V, 128, 32, 1, 0};
    EXPECT_NE(why_unsupported(f.id, v), "");
    EXPECT_THROW(make_codec(f.id, v), Error);
  }
  EXPECT_DOUBLE_EQ(info(FormatId::turbo4_qjl).bits_per_value(128), 4.25);
  EXPECT_DOUBLE_EQ(info(FormatId::turbo3_qjl).bits_per_value(64), 3.5);
}

}  // namespace
}  // namespace kvpack::format
