// RMSNorm, SiLU/SwiGLU, softmax and get_rows: SIMD (every target this CPU runs) against the
// scalar references. References evaluate in double where it matters, so each tolerance is the
// SIMD path's own rounding (u = 2^-24 relative, "ulp" = 2^-23 relative):
//  - rms_norm: the f32 sum of n squares is within gamma(n) relative in any order; the scale is a
//    square root (halving it) plus 2 roundings, then the same products as the reference:
//    (n/2 + 5) u relative.
//  - silu / swiglu: Highway's Exp is within 1 ulp, then 1 + e, the division and the multiply
//    round once each: 4 (5) ulp relative. Below f32's normal range (x < -88.7, where e^-x
//    overflows to inf and silu gives -0) the error is absolute, under 1e-36.
//  - geglu: t = 2 sqrt(2/pi) (x + 0.044715 x^3) takes 5 roundings (relative, no cancellation:
//    both terms share x's sign), which exp turns into 5 u |t| relative; then exp (1 ulp), 1 + e,
//    the division and the multiply: (5 |t| + 10) u relative (below f32's normal range, as silu,
//    an absolute 1e-36).
//  - softmax: x - max rounds (u |x - max| relative after exp), exp (1 ulp), the f32 sum of n
//    positive terms (gamma(n) relative) and the scaling: (n + 6 + |x - max|) u relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "model/ops.h"
#include "model/quant_ref.h"
#include "model/simd_targets.h"

namespace kvpack::model {
namespace {

constexpr double kU = 0x1p-24;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int64_t kLengths[] = {1, 3, 15, 17, 33, 100, 2048, 2051};

std::vector<float> gaussian(int64_t n, uint64_t seed, double sigma = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * sigma);
  return v;
}

// Equal within tol, or both NaN, or equal infinities.
void expect_close(float got, float want, double tol, const char* what, int64_t i) {
  if (std::isnan(want) || std::isinf(want)) {
    EXPECT_EQ(std::isnan(got), std::isnan(want)) << what << " [" << i << "] " << got;
    if (std::isinf(want)) {
      EXPECT_EQ(got, want) << what << " [" << i << "]";
    }
    return;
  }
  EXPECT_NEAR(got, want, tol) << what << " [" << i << "]";
}

TEST(Ops, RmsNormMatchesReference) {
  for_each_simd_target([](const char* target) {
    for (int64_t n : kLengths) {
      for (double sigma : {1.0, 1e-3, 1e4}) {
        const auto x = gaussian(n, n, sigma);
        const auto w = gaussian(n, n + 1);
        for (const float* weight : {w.data(), static_cast<const float*>(nullptr)}) {
          std::vector<float> y(n), want(n);
          rms_norm(x.data(), weight, 1e-5f, n, y.data());
          rms_norm_ref(x.data(), weight, 1e-5f, n, want.data());
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_NEAR(y[i], want[i], (0.5 * n + 5) * kU * std::fabs(want[i]))
                << target << " n=" << n << " sigma=" << sigma << " i=" << i;
          }
          // In place.
          std::vector<float> z = x;
          rms_norm(z.data(), weight, 1e-5f, n, z.data());
          EXPECT_EQ(z, y);
        }
      }
    }
    // All zeros: eps keeps it finite, the output is zero.
    std::vector<float> zeros(40, 0.0f), y(40, 1.0f);
    rms_norm(zeros.data(), nullptr, 1e-6f, 40, y.data());
    for (float v : y) EXPECT_EQ(v, 0.0f) << target;
  });
}

TEST(Ops, SiluAndSwigluMatchReference) {
  for_each_simd_target([](const char* target) {
    for (int64_t n : kLengths) {
      auto x = gaussian(n, 3 * n, 4.0);
      const auto up = gaussian(n, 3 * n + 1);
      const float specials[] = {0.0f,  -0.0f,  kInf,   -kInf,   kNaN,    1e30f,  -1e30f,
                                88.0f, -88.0f, -89.0f, -100.0f, -120.0f, 100.0f, 1e-30f};
      for (int64_t i = 0; i < n && i < 14; ++i) x[i] = specials[i];
      std::vector<float> y(n), want(n);
      silu(x.data(), n, y.data());
      silu_ref(x.data(), n, want.data());
      for (int64_t i = 0; i < n; ++i) {
        expect_close(y[i], want[i], 8 * kU * std::fabs(want[i]) + 1e-36, target, i);
      }
      swiglu(x.data(), up.data(), n, y.data());
      swiglu_ref(x.data(), up.data(), n, want.data());
      for (int64_t i = 0; i < n; ++i) {
        expect_close(y[i], want[i], 10 * kU * std::fabs(want[i]) + 1e-36, target, i);
      }
    }
  });
}

TEST(Ops, GegluMatchesReference) {
  for_each_simd_target([](const char* target) {
    for (int64_t n : kLengths) {
      auto x = gaussian(n, 7 * n, 4.0);
      const auto up = gaussian(n, 7 * n + 1);
      const float specials[] = {0.0f,  -0.0f, kInf,   -kInf,  kNaN,    1e30f,  -1e30f,
                                10.0f, -6.0f, -12.0f, -20.0f, -100.0f, 100.0f, 1e-30f};
      for (int64_t i = 0; i < n && i < 14; ++i) x[i] = specials[i];
      std::vector<float> y(n), want(n);
      geglu(x.data(), up.data(), n, y.data());
      geglu_ref(x.data(), up.data(), n, want.data());
      for (int64_t i = 0; i < n; ++i) {
        const double xi = x[i];
        const double t = 1.5957691216057308 * (xi + 0.044715 * xi * xi * xi);
        const double rel = std::isfinite(t) ? 5 * std::fabs(t) + 10 : 10;
        expect_close(y[i], want[i], rel * kU * std::fabs(want[i]) + 1e-36, target, i);
      }
      // gelu(x) ~ x for large x, ~ 0 for very negative x, gelu(0) = 0; in place.
      std::vector<float> z = x;
      geglu(z.data(), up.data(), n, z.data());
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isnan(y[i])) {
          EXPECT_EQ(z[i], y[i]) << target << " i=" << i;
        }
      }
    }
    // Values checked against the closed form by hand: gelu(1) = 0.841192, gelu(-1) = -0.158808.
    const float x[2] = {1.0f, -1.0f}, one[2] = {1.0f, 1.0f};
    float y[2];
    geglu(x, one, 2, y);
    EXPECT_NEAR(y[0], 0.8411920, 1e-6) << target;
    EXPECT_NEAR(y[1], -0.1588080, 1e-6) << target;
  });
}

TEST(Ops, SoftmaxMatchesReference) {
  for_each_simd_target([](const char* target) {
    for (int64_t n : kLengths) {
      for (double sigma : {1.0, 30.0}) {
        auto x = gaussian(n, 5 * n, sigma);
        if (n > 4) x[2] = x[n - 1] = -kInf;  // masked entries
        std::vector<float> y = x, want = x;
        softmax(y.data(), n);
        softmax_ref(want.data(), n);
        double total = 0;
        float max = -kInf;
        for (float v : x) max = std::max(max, v);
        for (int64_t i = 0; i < n; ++i) {
          const double rel = n + 6 + (std::isinf(x[i]) ? 0.0 : std::fabs(x[i] - max));
          ASSERT_NEAR(y[i], want[i], rel * kU * want[i] + 1e-38) << target << " i=" << i;
          total += y[i];
        }
        EXPECT_NEAR(total, 1.0, (n + 6) * kU) << target;
        if (n > 4) {
          EXPECT_EQ(y[2], 0.0f);
        }
      }
    }
    std::vector<float> one = {-3.0f};
    softmax(one.data(), 1);
    EXPECT_EQ(one[0], 1.0f);
    // Documented failures: NaN, +inf, or nothing but -inf give NaN everywhere.
    for (const std::vector<float>& bad : std::vector<std::vector<float>>{
             {1.0f, kNaN, 2.0f}, {1.0f, kInf, 2.0f}, {-kInf, -kInf, -kInf}}) {
      std::vector<float> y = bad;
      softmax(y.data(), 3);
      for (float v : y) EXPECT_TRUE(std::isnan(v)) << target;
    }
  });
}

TEST(Ops, GetRowsIsDequantizeRow) {
  const int64_t rows = 5, cols = 96;
  const auto f = gaussian(rows * cols, 11);
  for (GgmlType t :
       {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    std::vector<uint8_t> bytes(rows * weight_row_bytes(t, cols));
    WeightMatrix w;
    w.name = "token_embd.weight";
    w.type = t;
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = weight_row_bytes(t, cols);
    w.data = bytes.data();
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row_ref(t, f.data() + r * cols, bytes.data() + r * w.row_bytes, cols);
    }
    const int32_t ids[] = {4, 0, 4, 2};
    std::vector<float> out(4 * cols), want(cols);
    get_rows(w, ids, 4, out.data());
    for (int i = 0; i < 4; ++i) {
      dequantize_row_ref(t, w.row(ids[i]), want.data(), cols);
      EXPECT_EQ(std::memcmp(out.data() + i * cols, want.data(), cols * 4), 0);
    }
    const int32_t bad[] = {1, 5};
    try {
      get_rows(w, bad, 2, out.data());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "token id 5 is out of range for 'token_embd.weight' (5 rows)");
    }
  }
}

}  // namespace
}  // namespace kvpack::model
