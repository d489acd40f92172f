// SIMD matvec/matmul against the scalar reference, for every weight type and both dot paths.
//
// Tolerance (docs/weights.md): the reference sums in double; a kernel sums at most `cols` f32
// terms after at most 2 roundings per term (the block scale product and the term itself), so
// whatever order it adds them in, |y - y_ref| <= gamma(cols + 2) * sum |terms| with
// gamma(k) = k u / (1 - k u), u = 2^-24 (Higham, Accuracy and Stability, eq. 3.5 and 4.4). The
// reference's own double rounding is negligible. A wrong block or lane shifts the result by a
// whole term, far beyond this bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/rng.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/quant_ref.h"
#include "model/simd_targets.h"

namespace kvpack::model {
namespace {

constexpr GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                               GgmlType::Q4_0};

std::string type_name(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}
bool quantized(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0;
}

double gamma(int64_t k) {
  const double ku = static_cast<double>(k) * 0x1p-24;
  return ku / (1 - ku);
}

// A weight matrix quantized from f32 values, owning its bytes.
struct OwnedWeights {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

OwnedWeights make_weights(GgmlType t, int64_t rows, int64_t cols, const std::vector<float>& f) {
  OwnedWeights o;
  o.w.name = "test." + type_name(t);
  o.w.type = t;
  o.w.rows = rows;
  o.w.cols = cols;
  o.w.row_bytes = weight_row_bytes(t, cols);
  o.bytes.resize(o.w.bytes() + 64);  // slack: no kernel may read it, ASan would tell
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row_ref(t, f.data() + r * cols, o.bytes.data() + r * o.w.row_bytes, cols);
  }
  o.w.data = o.bytes.data();
  return o;
}

std::vector<float> gaussian(size_t n, uint64_t seed, double sigma = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * sigma);
  return v;
}

// Reference output and its sum of |terms| for one (row, token).
double ref_dot(const WeightMatrix& w, int64_t r, const float* x, QuantDot dot, double* abs_sum) {
  if (quantized(w.type) && dot == QuantDot::kInt8) {
    std::vector<BlockQ8_0> xq(w.cols / kQBlock);
    quantize_row_q8_0_ref(x, xq.data(), w.cols);
    return vec_dot_q8_ref(w.type, w.row(r), xq.data(), w.cols, abs_sum);
  }
  return vec_dot_f32_ref(w.type, w.row(r), x, w.cols, abs_sum);
}

void expect_matches_reference(const WeightMatrix& w, const std::vector<float>& x, int64_t n_tokens,
                              QuantDot dot, ThreadPool& pool) {
  std::vector<float> y(n_tokens * w.rows, -1.0f);
  matmul(w, x.data(), n_tokens, y.data(), pool, dot);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double abs_sum = 0;
      const double want = ref_dot(w, r, x.data() + t * w.cols, dot, &abs_sum);
      ASSERT_NEAR(y[t * w.rows + r], want, gamma(w.cols + 2) * abs_sum)
          << w.name << " " << w.rows << "x" << w.cols << " row " << r << " token " << t << " of "
          << n_tokens << (dot == QuantDot::kInt8 ? " int8" : " f32") << " on " << matmul_target();
    }
  }
}

TEST(Matmul, DispatchesToEveryTarget) {
  std::vector<std::string> seen;
  for_each_simd_target([&](const char* target) {
    EXPECT_STREQ(matmul_target(), target);
    seen.push_back(target);
  });
  EXPECT_FALSE(seen.empty());
  std::string list;
  for (const auto& s : seen) list += s + " ";
  RecordProperty("targets", list);
  std::printf("SIMD targets tested: %s(default: %s)\n", list.c_str(), matmul_target());
}

TEST(Matmul, MatchesReferenceOnOddShapes) {
  for_each_simd_target([&](const char*) {
    ThreadPool pool(2);
    // cols: multiples of 32 that are not multiples of 64 (the VNNI pair) or of 128 (AVX-512 x 8
    // rows); rows: not multiples of any tile height or of the 32-row task.
    const int64_t col_cases[] = {32, 96, 160, 544};
    const int64_t row_cases[] = {1, 7, 33, 70};
    for (GgmlType t : kTypes) {
      for (int64_t cols : col_cases) {
        for (int64_t rows : row_cases) {
          const auto f = gaussian(rows * cols, 1000 + rows * 7 + cols, 0.05);
          const OwnedWeights o = make_weights(t, rows, cols, f);
          const auto x = gaussian(5 * cols, 77 + cols);
          for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
            expect_matches_reference(o.w, x, 1, dot, pool);
            expect_matches_reference(o.w, x, 5, dot, pool);
          }
        }
      }
    }
  });
}

TEST(Matmul, FloatTypesTakeAnyColumnCount) {
  for_each_simd_target([&](const char*) {
    // stories260K's FFN down projection has 172 inputs; a tail shorter than one vector too.
    ThreadPool pool(2);
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
      for (int64_t cols : {1, 7, 172, 200}) {
        const OwnedWeights o = make_weights(t, 9, cols, gaussian(9 * cols, cols));
        expect_matches_reference(o.w, gaussian(6 * cols, cols + 1), 6, QuantDot::kF32, pool);
      }
    }
  });
}

TEST(Matmul, BatchEqualsMatvecBitForBit) {
  for_each_simd_target([&](const char*) {
    ThreadPool pool(2);
    const int64_t rows = 45, cols = 224;
    for (GgmlType t : kTypes) {
      const OwnedWeights o = make_weights(t, rows, cols, gaussian(rows * cols, 5, 0.1));
      const auto x = gaussian(17 * cols, 6);
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        std::vector<float> single(17 * rows);
        for (int64_t tok = 0; tok < 17; ++tok) {
          matvec(o.w, x.data() + tok * cols, single.data() + tok * rows, pool, dot);
        }
        for (int64_t n = 1; n <= 17; ++n) {
          std::vector<float> y(n * rows);
          matmul(o.w, x.data(), n, y.data(), pool, dot);
          ASSERT_EQ(std::memcmp(y.data(), single.data(), y.size() * 4), 0)
              << type_name(t) << " batch " << n << (dot == QuantDot::kInt8 ? " int8" : " f32");
        }
      }
    }
  });
}

TEST(Matmul, ExactArithmeticIsExact) {
  for_each_simd_target([&](const char*) {
    // Small integers: every product and partial sum is exact in f32, so any summation order gives
    // the reference's value exactly. Catches a misplaced lane that tolerances might hide.
    ThreadPool pool(2);
    const int64_t rows = 19, cols = 160;
    Rng rng(9);
    std::vector<float> f(rows * cols), x(3 * cols);
    for (auto& v : f) v = static_cast<float>(static_cast<int>(rng.below(15)) - 7);  // Q4_0 grid
    for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(255)) - 127);
    for (int64_t b = 0; b < 3 * cols; b += kQBlock) x[b] = 127.0f;  // q8 scale 1: exact quants
    for (GgmlType t : kTypes) {
      // One value per block fixes the scale at exactly 1: -8 for Q4_0 (d = max / -8), 127 for Q8_0.
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < cols; b += kQBlock)
          f[r * cols + b] = t == GgmlType::Q8_0 ? 127 : -8;
      }
      const OwnedWeights o = make_weights(t, rows, cols, f);
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        std::vector<float> y(3 * rows), want(3 * rows);
        matmul(o.w, x.data(), 3, y.data(), pool, dot);
        matmul_ref(o.w, x.data(), 3, want.data(), dot);
        EXPECT_EQ(y, want) << type_name(t);
      }
    }
  });
}

TEST(Matmul, ZerosAndOutliers) {
  for_each_simd_target([&](const char*) {
    ThreadPool pool(2);
    const int64_t rows = 13, cols = 96;
    for (GgmlType t : kTypes) {
      // Zero weights or zero activations: exactly zero out.
      const OwnedWeights zero_w =
          make_weights(t, rows, cols, std::vector<float>(rows * cols, 0.0f));
      std::vector<float> y(rows, 1.0f);
      matvec(zero_w.w, gaussian(cols, 1).data(), y.data(), pool);
      for (float v : y) EXPECT_EQ(v, 0.0f) << type_name(t);
      const OwnedWeights o = make_weights(t, rows, cols, gaussian(rows * cols, 2));
      std::vector<float> zx(cols, 0.0f);
      matvec(o.w, zx.data(), y.data(), pool);
      for (float v : y) EXPECT_EQ(v, 0.0f) << type_name(t);

      // Huge outliers in weights (within f16 range) and activations: up to 1e30 for f32 dots, up to
      // the q8_0 limit (127 * 65504) for integer dots.
      auto f = gaussian(rows * cols, 3);
      f[5] = 60000.0f;
      f[rows * cols / 2] = -30000.0f;
      const OwnedWeights big = make_weights(t, rows, cols, f);
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        const float huge = dot == QuantDot::kInt8 ? 8.3e6f : 1e30f;
        auto x = gaussian(4 * cols, 4);
        x[7] = huge;
        x[cols + 40] = -huge;
        x[2 * cols + 3] = 1e-30f;
        expect_matches_reference(big.w, x, 4, dot, pool);
      }
    }
  });
}

TEST(Matmul, NonFiniteActivations) {
  for_each_simd_target([&](const char*) {
    // Documented in matmul.h: integer dots turn every output NaN when a block holds NaN or Inf;
    // f32 dots propagate IEEE-style (NaN stays NaN).
    ThreadPool pool(2);
    const int64_t rows = 11, cols = 128;
    for (GgmlType t : kTypes) {
      const OwnedWeights o = make_weights(t, rows, cols, gaussian(rows * cols, 8));
      for (float bad : {NAN, INFINITY}) {
        auto x = gaussian(cols, 9);
        x[70] = bad;
        for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
          std::vector<float> y(rows), want(rows);
          matvec(o.w, x.data(), y.data(), pool, dot);
          matmul_ref(o.w, x.data(), 1, want.data(), dot);
          for (int64_t r = 0; r < rows; ++r) {
            EXPECT_FALSE(std::isfinite(y[r])) << type_name(t) << " row " << r;
            EXPECT_EQ(std::isnan(y[r]), std::isnan(want[r])) << type_name(t) << " row " << r;
            if (quantized(t) && dot == QuantDot::kInt8) {
              EXPECT_TRUE(std::isnan(y[r]));
            }
          }
        }
      }
    }
  });
}

TEST(Matmul, Int8ActivationErrorWithinBound) {
  for_each_simd_target([&](const char*) {
    // The integer path's extra error (activations rounded to q8_0) stays within the a priori bound
    // the forward-pass tolerances build on.
    ThreadPool pool(2);
    const int64_t rows = 64, cols = 2048;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
      const OwnedWeights o = make_weights(t, rows, cols, gaussian(rows * cols, 10, 0.02));
      const auto x = gaussian(cols, 11);
      std::vector<float> y(rows);
      matvec(o.w, x.data(), y.data(), pool, QuantDot::kInt8);
      double worst_ratio = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double abs_sum = 0;
        const double exact = vec_dot_f32_ref(t, o.w.row(r), x.data(), cols, &abs_sum);
        const double bound = q8_activation_error_bound(t, o.w.row(r), x.data(), cols);
        EXPECT_LE(std::fabs(y[r] - exact), bound + gamma(cols + 2) * abs_sum * 1.01) << "row " << r;
        worst_ratio = std::max(worst_ratio, std::fabs(y[r] - exact) / bound);
        // The statistical size: independent roundings mostly cancel.
        EXPECT_LE(std::fabs(y[r] - exact),
                  6 * q8_activation_error_rms(t, o.w.row(r), x.data(), cols))
            << "row " << r;
      }
      RecordProperty(type_name(t) + "_worst_error_over_bound", std::to_string(worst_ratio));
    }
  });
}

TEST(Matmul, SimdQuantizerMatchesReference) {
  for_each_simd_target([&](const char*) {
    std::vector<float> x = gaussian(32 * 40, 12);
    for (int j = 0; j < 32; ++j) x[j] = 0.0f;               // all-zero block
    for (int j = 32; j < 64; ++j) x[j] = (j - 48) * 0.5f;   // exact halves: roundf ties
    for (int j = 64; j < 96; ++j) x[j] = 1e-6f * (j - 80);  // subnormal f16 scale
    for (int j = 96; j < 128; ++j) x[j] = 3e4f * ((j & 1) ? 1 : -1);
    x[200] = 8.3e6f;   // the largest block scale f16 holds
    x[230] = -8.4e6f;  // beyond it: NaN scale
    for (int j = 256; j < 288; ++j) x[j] = 127.0f * (j % 3 - 1) + 0.5f;  // ties at the edge
    std::vector<BlockQ8_0> ref(40), simd(40);
    quantize_row_q8_0_ref(x.data(), ref.data(), x.size());
    quantize_row_q8_0(x.data(), simd.data(), x.size());
    for (int b = 0; b < 40; ++b) {
      EXPECT_EQ(std::memcmp(&ref[b], &simd[b], sizeof(BlockQ8_0)), 0) << "block " << b;
    }
    x[300] = NAN;
    quantize_row_q8_0_ref(x.data(), ref.data(), x.size());
    quantize_row_q8_0(x.data(), simd.data(), x.size());
    EXPECT_EQ(std::memcmp(ref.data(), simd.data(), 40 * sizeof(BlockQ8_0)), 0);
  });
}

}  // namespace
}  // namespace kvpack::model
