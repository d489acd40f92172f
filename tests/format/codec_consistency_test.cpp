// Properties every registered format must have, whatever its maths: the K-role and V-role
// operations agree with the reference decode, encoding is deterministic, zeros stay zeros,
// non-finite input never produces non-finite output, and heads do not interfere.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "inputs.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

using testing::Rows;

struct Case {
  FormatId id;
  Role role;
  int head_dim;
  int page_tokens;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << info(c.id).name << (c.role == Role::K ? " K" : " V") << " d=" << c.head_dim
      << " page=" << c.page_tokens;
}

std::vector<Case> cases_for(std::vector<Role> roles) {
  std::vector<Case> cases;
  for (const auto& f : all_formats()) {
    for (Role role : roles) {
      for (int d : {8, 64, 96, 128, 256}) {
        for (int t : {16, 32}) {
          if (why_unsupported(f.id, CodecConfig{role, d, t, 1, 0}).empty()) {
            cases.push_back({f.id, role, d, t});
          }
        }
      }
    }
  }
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<Case>& p) {
  return std::string(info(p.param.id).name) + (p.param.role == Role::K ? "_K_d" : "_V_d") +
         std::to_string(p.param.head_dim) + "_p" + std::to_string(p.param.page_tokens);
}

class CodecConsistency : public ::testing::TestWithParam<Case> {
 protected:
  std::unique_ptr<Codec> make(int n_heads = 3) {
    const Case& c = GetParam();
    return make_codec(c.id, CodecConfig{c.role, c.head_dim, c.page_tokens, n_heads, 0x1234});
  }
};

// Sum of |a_j b_j|: the scale against which a dot product's rounding error is judged.
double abs_dot(const float* a, const float* b, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += std::fabs(static_cast<double>(a[j]) * b[j]);
  return s;
}

class KeyOps : public CodecConsistency {};
class ValueOps : public CodecConsistency {};

TEST_P(KeyOps, ScoreMatchesDotWithDecodedKeys) {
  const Case& c = GetParam();
  auto codec = make();
  const int d = c.head_dim;
  const int n_q = 4;
  for (int n : {1, 7, c.page_tokens}) {
    for (int head : {0, 2}) {
      const Rows k = testing::outlier_rows(n, d, 10 + n);
      const Rows q = testing::gaussian_rows(n_q, d, 20 + n);
      std::vector<uint8_t> block(codec->head_bytes());
      codec->encode(head, k.x.data(), n, block.data());
      std::vector<float> kd(static_cast<size_t>(n) * d);
      codec->decode(head, block.data(), n, kd.data());
      std::vector<float> qp(codec->query_floats() * n_q);
      for (int i = 0; i < n_q; ++i) {
        codec->prepare_query(head, q.x.data() + i * d, qp.data() + i * codec->query_floats());
      }
      const int stride = n + 3;
      std::vector<float> logits(static_cast<size_t>(n_q) * stride, -1.0f);
      codec->score(block.data(), n, qp.data(), n_q, logits.data(), stride);
      for (int i = 0; i < n_q; ++i) {
        for (int t = 0; t < n; ++t) {
          double ref = 0;
          for (int j = 0; j < d; ++j) {
            ref += static_cast<double>(q.x[i * d + j]) * kd[static_cast<size_t>(t) * d + j];
          }
          const double tol = 1e-5 * abs_dot(q.x.data() + i * d, kd.data() + t * d, d) + 1e-6;
          EXPECT_NEAR(logits[i * stride + t], ref, tol) << "n=" << n << " head=" << head;
        }
        for (int t = n; t < stride; ++t) EXPECT_EQ(logits[i * stride + t], -1.0f);
      }
    }
  }
}

TEST_P(ValueOps, AccumulateAndFinishMatchWeightedSumOfDecodedValues) {
  const Case& c = GetParam();
  auto codec = make();
  const int d = c.head_dim;
  const int n_q = 3;
  for (int n : {1, 5, c.page_tokens}) {
    for (int head : {0, 2}) {
      const Rows v = testing::outlier_rows(n, d, 30 + n);
      std::vector<uint8_t> block(codec->head_bytes());
      codec->encode(head, v.x.data(), n, block.data());
      std::vector<float> vd(static_cast<size_t>(n) * d);
      codec->decode(head, block.data(), n, vd.data());
      Rng rng(40 + n);
      const int stride = n + 1;
      std::vector<float> w(static_cast<size_t>(n_q) * stride);
      for (auto& x : w) x = static_cast<float>(rng.uniform());
      std::vector<float> acc(codec->acc_floats() * n_q, 0.0f);
      codec->accumulate(block.data(), n, w.data(), stride, n_q, acc.data());
      std::vector<float> out(static_cast<size_t>(n_q) * d);
      codec->finish(head, acc.data(), n_q, out.data());
      for (int i = 0; i < n_q; ++i) {
        for (int j = 0; j < d; ++j) {
          double ref = 0, scale = 0;
          for (int t = 0; t < n; ++t) {
            ref += static_cast<double>(w[i * stride + t]) * vd[static_cast<size_t>(t) * d + j];
            scale += std::fabs(static_cast<double>(w[i * stride + t]) *
                               vd[static_cast<size_t>(t) * d + j]);
          }
          double row_scale = 0;  // rotations mix channels: judge against the row's magnitude
          for (int jj = 0; jj < d; ++jj) {
            for (int t = 0; t < n; ++t) {
              row_scale = std::max(
                  row_scale, std::fabs(static_cast<double>(vd[static_cast<size_t>(t) * d + jj])));
            }
          }
          const double tol = 1e-5 * (scale + row_scale * n) + 1e-6;
          EXPECT_NEAR(out[i * d + j], ref, tol) << "n=" << n << " head=" << head << " j=" << j;
        }
      }
    }
  }
}

TEST_P(CodecConsistency, DeterministicAndZerosStayZeros) {
  const Case& c = GetParam();
  auto codec = make();
  const int d = c.head_dim;
  const int n = c.page_tokens;
  const Rows x = testing::gaussian_rows(n, d, 5);
  std::vector<uint8_t> a(codec->head_bytes(), 0), b(codec->head_bytes(), 0xff);
  codec->encode(1, x.x.data(), n, a.data());
  codec->encode(1, x.x.data(), n, b.data());
  EXPECT_EQ(a, b);
  auto codec2 = make();
  codec2->encode(1, x.x.data(), n, b.data());
  EXPECT_EQ(a, b) << "two codecs with the same config must encode identically";

  const std::vector<float> zeros(static_cast<size_t>(n) * d, 0.0f);
  codec->encode(0, zeros.data(), n, a.data());
  std::vector<float> out(static_cast<size_t>(n) * d, 1.0f);
  codec->decode(0, a.data(), n, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST_P(CodecConsistency, NonFiniteInputNeverDecodesToNonFinite) {
  const Case& c = GetParam();
  auto codec = make();
  const int d = c.head_dim;
  const int n = c.page_tokens;
  Rows x = testing::gaussian_rows(n, d, 6);
  x.x[0] = std::numeric_limits<float>::quiet_NaN();
  x.x[static_cast<size_t>(d) + 1] = std::numeric_limits<float>::infinity();
  x.x[static_cast<size_t>(2 * d) + 2] = -std::numeric_limits<float>::infinity();
  x.x[static_cast<size_t>(3 * d) + 3] = 3e38f;
  std::vector<uint8_t> block(codec->head_bytes());
  codec->encode(0, x.x.data(), n, block.data());
  std::vector<float> out(static_cast<size_t>(n) * d);
  codec->decode(0, block.data(), n, out.data());
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
  // NaN is stored as 0 (exactly, for the float formats; within the group's step otherwise).
  if (c.id == FormatId::f32 || c.id == FormatId::f16 || c.id == FormatId::bf16) {
    EXPECT_EQ(out[0], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, CodecConsistency,
                         ::testing::ValuesIn(cases_for({Role::K, Role::V})), case_name);
INSTANTIATE_TEST_SUITE_P(AllFormats, KeyOps, ::testing::ValuesIn(cases_for({Role::K})), case_name);
INSTANTIATE_TEST_SUITE_P(AllFormats, ValueOps, ::testing::ValuesIn(cases_for({Role::V})),
                         case_name);

}  // namespace
}  // namespace kvpack::format
