// SIMD matvec/matmul against the scalar reference, for every weight type of the traits table and
// both dot paths, on every SIMD target this CPU runs.
//
// Tolerance (docs/weights.md): the reference sums in double; a kernel adds at most `cols` f32
// terms (or per-block partial sums), each after at most 4 roundings (the scale product, the
// conversion of an integer block sum, the term, and for min types the separately rounded min
// part), so whatever order it adds them in, |y - y_ref| <= gamma(cols + 4) * abs_sum with
// gamma(k) = k u / (1 - k u), u = 2^-24 (Higham, Accuracy and Stability, eq. 3.5 and 4.4) and
// abs_sum the sum of |terms| over the scale and min parts (vec_dot_act_ref). A wrong block or
// lane shifts the result by a whole term, far beyond this bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/half.h"
#include "base/rng.h"
#include "base/simd_target.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/matmul_kernels.h"
#include "model/quant_ref.h"
#include "model/simd_targets.h"

namespace kvpack::model {
namespace {

std::string type_name(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}
bool int_path(GgmlType t, QuantDot dot) {
  return dot == QuantDot::kInt8 && weight_traits(t).act != ActType::kF32;
}

double gamma(int64_t k) {
  const double ku = static_cast<double>(k) * 0x1p-24;
  return ku / (1 - ku);
}

// A weight matrix owning its bytes.
struct OwnedWeights {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

OwnedWeights empty_weights(GgmlType t, int64_t rows, int64_t cols) {
  OwnedWeights o;
  o.w.name = "test." + type_name(t);
  o.w.type = t;
  o.w.rows = rows;
  o.w.cols = cols;
  o.w.row_bytes = weight_row_bytes(t, cols);
  o.bytes.resize(o.w.bytes() + 64);  // slack: no kernel may read it, ASan would tell
  o.w.data = o.bytes.data();
  return o;
}

OwnedWeights make_weights(GgmlType t, int64_t rows, int64_t cols, const std::vector<float>& f) {
  OwnedWeights o = empty_weights(t, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row_ref(t, f.data() + r * cols, o.bytes.data() + r * o.w.row_bytes, cols);
  }
  return o;
}

// Offsets of the f16 scale fields in each block (quant/blocks.h), and which are mins.
struct ScaleFields {
  GgmlType type;
  int d;
  int m;  // -1: none
};
constexpr ScaleFields kScaleFields[] = {
    {GgmlType::Q8_0, 0, -1},  {GgmlType::Q4_0, 0, -1},   {GgmlType::Q4_1, 0, 2},
    {GgmlType::Q5_0, 0, -1},  {GgmlType::Q5_1, 0, 2},    {GgmlType::IQ4_NL, 0, -1},
    {GgmlType::Q2_K, 80, 82}, {GgmlType::Q3_K, 108, -1}, {GgmlType::Q4_K, 0, 2},
    {GgmlType::Q5_K, 0, 2},   {GgmlType::Q6_K, 208, -1}, {GgmlType::IQ4_XS, 0, -1},
};

// Random bytes in every quant and sub-scale field (every bit pattern the decoders must handle),
// with the f16 scales set to 2^-12 and mins to small multiples of it: every weight is then a
// multiple of 2^-12 of magnitude below ~1, so with integer activations every partial sum of any
// kernel is exact in f32.
OwnedWeights random_blocks(GgmlType t, int64_t rows, int64_t cols, uint64_t seed) {
  OwnedWeights o = empty_weights(t, rows, cols);
  Rng rng(seed);
  for (size_t i = 0; i < o.w.bytes(); ++i) o.bytes[i] = static_cast<uint8_t>(rng.below(256));
  const WeightTypeTraits& tr = weight_traits(t);
  for (const ScaleFields& f : kScaleFields) {
    if (f.type != t) continue;
    for (size_t b = 0; b < o.w.bytes(); b += static_cast<size_t>(tr.block_bytes)) {
      const uint16_t d = f32_to_f16(0x1p-12f);
      std::memcpy(o.bytes.data() + b + f.d, &d, 2);
      if (f.m >= 0) {
        const uint16_t m = f32_to_f16(static_cast<float>(rng.below(64)) * 0x1p-12f);
        std::memcpy(o.bytes.data() + b + f.m, &m, 2);
      }
    }
  }
  if (tr.act == ActType::kF32) {  // float types: small integers times 2^-12
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = static_cast<float>(static_cast<int>(rng.below(255)) - 127) * 0x1p-12f;
      quantize_row_ref(t, &v, o.bytes.data() + i * (tr.block_bytes), 1);
    }
  }
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
  if (int_path(w.type, dot)) {
    const ActType a = weight_traits(w.type).act;
    std::vector<uint8_t> xq(w.cols / act_block_size(a) * act_block_bytes(a));
    quantize_row_act_ref(a, x, xq.data(), w.cols);
    return vec_dot_act_ref(w.type, w.row(r), xq.data(), w.cols, abs_sum);
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
      ASSERT_NEAR(y[t * w.rows + r], want, gamma(w.cols + 4) * abs_sum)
          << w.name << " " << w.rows << "x" << w.cols << " row " << r << " token " << t << " of "
          << n_tokens << (dot == QuantDot::kInt8 ? " int8" : " f32") << " on " << matmul_target();
    }
  }
}

// Column counts per block size: not multiples of two blocks (the 512-bit pair) or of larger
// tiles, and for the 256-value types not of 512.
std::vector<int64_t> odd_cols(GgmlType t) {
  if (weight_block_size(t) == kQK) return {256, 768};
  return {32, 96, 160, 544};
}

TEST(Matmul, DispatchesToEveryTarget) {
  std::vector<std::string> seen;
  for_each_simd_target([&](const char* target) {
    EXPECT_EQ(matmul_target(), std::string(target));
    EXPECT_EQ(active_simd_target(), std::string(target));
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
    // rows: not multiples of any tile height or of the 32-row task.
    const int64_t row_cases[] = {1, 7, 33, 70};
    for (const WeightTypeTraits& tr : weight_types()) {
      for (int64_t cols : odd_cols(tr.type)) {
        for (int64_t rows : row_cases) {
          const auto f = gaussian(rows * cols, 1000 + rows * 7 + cols, 0.05);
          const OwnedWeights o = make_weights(tr.type, rows, cols, f);
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
    const int64_t rows = 45;
    for (const WeightTypeTraits& tr : weight_types()) {
      const int64_t cols = tr.block == kQK ? 512 : 224;
      const OwnedWeights o = make_weights(tr.type, rows, cols, gaussian(rows * cols, 5, 0.1));
      const auto x = gaussian(17 * cols, 6);
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        std::vector<float> single(17 * rows);
        for (int64_t tok = 0; tok < 17; ++tok) {
          matvec(o.w, x.data() + tok * cols, single.data() + tok * rows, pool, dot);
        }
        for (int64_t n : {1, 2, 3, 4, 5, 8, 9, 16, 17}) {
          std::vector<float> y(n * rows);
          matmul(o.w, x.data(), n, y.data(), pool, dot);
          ASSERT_EQ(std::memcmp(y.data(), single.data(), y.size() * 4), 0)
              << type_name(tr.type) << " batch " << n << (dot == QuantDot::kInt8 ? " int8" : " f32")
              << " on " << matmul_target();
        }
      }
    }
  });
}

TEST(Matmul, ExactArithmeticIsExact) {
  for_each_simd_target([&](const char*) {
    // Random blocks whose weights are multiples of 2^-12 below ~1, integer activations whose
    // q8_0 / q8_K scale is exactly 1 (each block holds -127; the rest are -1, 0, 1): every product
    // and partial sum is exact in f32, so any summation order gives the reference's value
    // exactly. Catches a misplaced lane or a misread bit that tolerances might hide.
    ThreadPool pool(2);
    const int64_t rows = 19;
    for (const WeightTypeTraits& tr : weight_types()) {
      // Sum |terms| stays below 2^24 * 2^-12, where f32 stops holding multiples of 2^-12.
      const int64_t cols = tr.block == kQK ? 256 : 160;
      Rng rng(9);
      std::vector<float> x(3 * cols);
      for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(3)) - 1);
      for (int64_t b = 0; b < 3 * cols; b += kQBlock) x[b + rng.below(kQBlock)] = -127.0f;
      const OwnedWeights o = random_blocks(tr.type, rows, cols, 10 + static_cast<int>(tr.type));
      for (QuantDot dot : {QuantDot::kInt8, QuantDot::kF32}) {
        std::vector<float> y(3 * rows), want(3 * rows);
        matmul(o.w, x.data(), 3, y.data(), pool, dot);
        matmul_ref(o.w, x.data(), 3, want.data(), dot);
        EXPECT_EQ(y, want) << type_name(tr.type) << (dot == QuantDot::kInt8 ? " int8" : " f32")
                           << " on " << matmul_target();
      }
    }
  });
}

TEST(Matmul, ZerosAndOutliers) {
  for_each_simd_target([&](const char*) {
    ThreadPool pool(2);
    const int64_t rows = 13;
    for (const WeightTypeTraits& tr : weight_types()) {
      const GgmlType t = tr.type;
      const int64_t cols = tr.block == kQK ? 256 : 96;
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

      // Huge outliers in weights (within f16 range) and activations: up to 1e30 for f32 dots, up
      // to the q8_0 limit (127 * 65504) for integer dots.
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
    const int64_t rows = 11;
    for (const WeightTypeTraits& tr : weight_types()) {
      const GgmlType t = tr.type;
      const int64_t cols = tr.block == kQK ? 256 : 128;
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
            if (int_path(t, dot)) {
              EXPECT_TRUE(std::isnan(y[r])) << type_name(t);
            }
          }
        }
      }
    }
  });
}

TEST(Matmul, Int8ActivationErrorWithinBound) {
  for_each_simd_target([&](const char*) {
    // The integer path's extra error (activations rounded to q8_0 / q8_K) stays within the a
    // priori bound the forward-pass tolerances build on.
    ThreadPool pool(2);
    const int64_t rows = 16, cols = 2048;
    for (const WeightTypeTraits& tr : weight_types()) {
      if (tr.act == ActType::kF32) continue;
      const OwnedWeights o = make_weights(tr.type, rows, cols, gaussian(rows * cols, 10, 0.02));
      const auto x = gaussian(cols, 11);
      std::vector<float> y(rows);
      matvec(o.w, x.data(), y.data(), pool, QuantDot::kInt8);
      double worst_ratio = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double abs_sum = 0;
        const double exact = vec_dot_f32_ref(tr.type, o.w.row(r), x.data(), cols, &abs_sum);
        const double bound = q8_activation_error_bound(tr.type, o.w.row(r), x.data(), cols);
        EXPECT_LE(std::fabs(y[r] - exact), bound + gamma(cols + 4) * abs_sum * 1.5)
            << type_name(tr.type) << " row " << r;
        worst_ratio = std::max(worst_ratio, std::fabs(y[r] - exact) / bound);
        // The statistical size: independent roundings mostly cancel.
        EXPECT_LE(std::fabs(y[r] - exact),
                  6 * q8_activation_error_rms(tr.type, o.w.row(r), x.data(), cols))
            << type_name(tr.type) << " row " << r;
      }
      RecordProperty(type_name(tr.type) + "_worst_error_over_bound", std::to_string(worst_ratio));
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

// The matvec tiles' prefetch (matmul_kernels.h): over a tile's steps it asks for exactly the
// next tile's rows, each byte once, in order, and nothing past the matrix (nor anything when the
// tile is the last, or for prefill tiles, which pass rows = 0).
TEST(NextTilePrefetch, StepsCoverTheNextTilesRowsOnce) {
  std::vector<uint8_t> bytes(64 * 4352);
  for (const size_t row_bytes : {size_t{18}, size_t{210} * 16, size_t{4352}}) {
    for (const int64_t n_rows : {int64_t{1}, int64_t{5}, int64_t{8}, int64_t{10}}) {
      WeightMatrix w;
      w.rows = n_rows;
      w.row_bytes = row_bytes;
      w.data = bytes.data();
      for (const int tile : {0, 1, 4}) {
        for (const int64_t steps : {int64_t{1}, int64_t{3}, int64_t{16}, int64_t{200}}) {
          for (int64_t r0 = 0; r0 < n_rows; r0 += std::max(tile, 1)) {
            SCOPED_TRACE(testing::Message()
                         << "row_bytes " << row_bytes << " rows " << n_rows << " tile " << tile
                         << " steps " << steps << " r0 " << r0);
            const NextTilePrefetch next(w, r0, tile, steps);
            const int64_t first = std::min(r0 + tile, n_rows);
            const int64_t last = tile == 0 ? first : std::min(r0 + 2 * tile, n_rows);
            const uint8_t* want = w.row(first);
            for (int64_t s = 0; s < steps; ++s) {
              const PrefetchRange r = next.range(s);
              if (r.size == 0) continue;
              ASSERT_EQ(r.first, want) << "step " << s;
              want += r.size;
            }
            EXPECT_EQ(want, w.row(last));
          }
        }
      }
    }
  }
}

// The sequential matvec's prefetch (matmul_kernels.h): walking the matrix in steps of any size,
// the steps ask for every byte from kAhead on exactly once, in order, and nothing past the end.
TEST(StreamPrefetch, StepsCoverTheStreamAheadOnce) {
  constexpr size_t kAhead = StreamPrefetch::kAhead;
  std::vector<uint8_t> bytes(64 * 4352);
  for (const size_t row_bytes : {size_t{144}, size_t{210} * 16, size_t{4352}}) {
    for (const int64_t n_rows : {int64_t{1}, int64_t{3}, int64_t{10}, int64_t{64}}) {
      WeightMatrix w;
      w.rows = n_rows;
      w.row_bytes = row_bytes;
      w.data = bytes.data();
      const uint8_t* end = w.row(n_rows - 1) + row_bytes;
      for (const size_t step : {size_t{144}, size_t{210}, size_t{4352}}) {
        if (row_bytes % step != 0) continue;
        SCOPED_TRACE(testing::Message()
                     << "row_bytes " << row_bytes << " rows " << n_rows << " step " << step);
        const StreamPrefetch ahead(w);
        const uint8_t* want = w.data + kAhead;
        for (const uint8_t* at = w.data; at < end; at += step) {
          const PrefetchRange r = ahead.range(at, step);
          if (r.size == 0) continue;
          ASSERT_EQ(r.first, want) << "at " << (at - w.data);
          want += r.size;
        }
        EXPECT_EQ(want, std::max(end, w.data + kAhead));
      }
    }
  }
}

}  // namespace
}  // namespace kvpack::model
