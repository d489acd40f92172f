// The weight types against ggml's own output (../shared/reference/ggml-quant, see its README):
// dequantization and quantization bit for bit, and the quantized dot products within the bound
// the README derives (1e-5 of the sum of |terms|; ggml itself is within ~1e-7).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/half.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/quant_ref.h"
#include "model/simd_targets.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

struct Reference {
  nlohmann::json json;
  std::vector<uint8_t> bin;
  int rows = 0, cols = 0;
  size_t row_bytes = 0;
  const float* input() const { return reinterpret_cast<const float*>(section("input_f32")); }
  const uint8_t* quantized() const { return section("quantized"); }
  const float* dequantized() const {
    return reinterpret_cast<const float*>(section("dequantized_f32"));
  }
  const uint8_t* section(const char* name) const {
    return bin.data() + json["sections"][name]["offset"].get<size_t>();
  }
};

using kvpack::testing::read_bytes;

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::stoi(hex.substr(2 * i, 2), nullptr, 16);
  return out;
}

std::string type_file(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}

Reference parse_reference(const std::filesystem::path& bin, const std::filesystem::path& json) {
  Reference ref;
  ref.bin = read_bytes(bin);
  std::ifstream jf(json);
  ref.json = nlohmann::json::parse(jf);
  ref.rows = ref.json["rows"].get<int>();
  ref.cols = ref.json["cols"].get<int>();
  ref.row_bytes = ref.json["row_bytes"].get<size_t>();
  return ref;
}

// Loads <type>.bin/.json (or skips) and checks the sizes the tests rely on. The sha256 is not
// checked: the bit-exact comparisons would catch any corruption.
#define LOAD_REFERENCE(ref, type)                                                      \
  KVPACK_SHARED_FILE(bin_path_, "reference/ggml-quant/" + type_file(type) + ".bin");   \
  KVPACK_SHARED_FILE(json_path_, "reference/ggml-quant/" + type_file(type) + ".json"); \
  const Reference ref = parse_reference(bin_path_, json_path_);                        \
  ASSERT_EQ(ref.bin.size(), ref.json["file_bytes"].get<size_t>());                     \
  ASSERT_EQ(ref.json["ggml_type_id"].get<uint32_t>(), static_cast<uint32_t>(type));    \
  ASSERT_EQ(ref.row_bytes, weight_row_bytes(type, ref.cols))

class GgmlReference : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GgmlReference, DequantizeIsBitExact) {
  const GgmlType t = GetParam();
  const std::string name = type_file(t);
  LOAD_REFERENCE(ref, t);
  const int rows = ref.rows, cols = ref.cols;
  const size_t row_bytes = ref.row_bytes;

  std::vector<float> out(cols);
  for (int r = 0; r < rows; ++r) {
    dequantize_row_ref(t, ref.quantized() + r * row_bytes, out.data(), cols);
    // memcmp, so -0.0 vs +0.0 counts (ggml's (q - 8) * d gives -0.0 for q = 8, d < 0).
    EXPECT_EQ(std::memcmp(out.data(), ref.dequantized() + r * cols, cols * 4), 0)
        << name << " row " << r;
  }
}

TEST_P(GgmlReference, QuantizeIsBitExact) {
  const GgmlType t = GetParam();
  const std::string name = type_file(t);
  LOAD_REFERENCE(ref, t);
  const int rows = ref.rows, cols = ref.cols;
  const size_t row_bytes = ref.row_bytes;
  std::vector<uint8_t> out(row_bytes);
  for (int r = 0; r < rows; ++r) {
    quantize_row_ref(t, ref.input() + r * cols, out.data(), cols);
    EXPECT_EQ(std::memcmp(out.data(), ref.quantized() + r * row_bytes, row_bytes), 0)
        << name << " row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlReference,
                         ::testing::Values(GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                                           GgmlType::Q4_0),
                         [](const auto& p) { return type_file(p.param); });

// ggml's vec_dot: x quantized to q8_0 (compared byte for byte with ggml's xq), then each weight
// row's dot product, by the scalar reference and by the SIMD matvec on both paths.
class GgmlVecDot : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GgmlVecDot, MatchesGgml) {
  const GgmlType t = GetParam();
  const std::string name = type_file(t);
  LOAD_REFERENCE(ref, t);
  const int rows = ref.rows, cols = ref.cols;
  const nlohmann::json& vd = ref.json["vec_dot"];
  ASSERT_EQ(vd["vec_dot_type"].get<std::string>(), "q8_0");
  const std::vector<float> x = vd["x_f32"].get<std::vector<float>>();
  ASSERT_EQ(static_cast<int>(x.size()), cols);

  // The activation quantizer: reference and SIMD both give ggml's bytes.
  for_each_simd_target([&](const char*) {
    const std::vector<uint8_t> xq_ggml = from_hex(vd["xq_hex"].get<std::string>());
    std::vector<BlockQ8_0> xq(cols / kQBlock), xq_simd(cols / kQBlock);
    ASSERT_EQ(xq_ggml.size(), xq.size() * sizeof(BlockQ8_0));
    quantize_row_q8_0_ref(x.data(), xq.data(), cols);
    EXPECT_EQ(std::memcmp(xq.data(), xq_ggml.data(), xq_ggml.size()), 0);
    quantize_row_q8_0(x.data(), xq_simd.data(), cols);
    EXPECT_EQ(std::memcmp(xq_simd.data(), xq_ggml.data(), xq_ggml.size()), 0);

    WeightMatrix w;
    w.name = name;
    w.type = t;
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = weight_row_bytes(t, cols);
    w.data = ref.quantized();
    ThreadPool pool(2);
    std::vector<float> y_int8(rows), y_f32(rows), y_ref_int8(rows), y_ref_f32(rows);
    matvec(w, x.data(), y_int8.data(), pool, QuantDot::kInt8);
    matvec(w, x.data(), y_f32.data(), pool, QuantDot::kF32);
    matmul_ref(w, x.data(), 1, y_ref_int8.data(), QuantDot::kInt8);
    matmul_ref(w, x.data(), 1, y_ref_f32.data(), QuantDot::kF32);
    for (int r = 0; r < rows; ++r) {
      const nlohmann::json& res = vd["results"][r];
      const double exact = res["f64_dequant"].get<double>();
      const double abs_sum = res["f64_abs_sum"].get<double>();
      const double exact_f32x = res["f64_dequant_w_f32_x"].get<double>();
      // Our double reference is the same sum as ggml's f64_dequant, up to double rounding.
      EXPECT_NEAR(vec_dot_q8_ref(t, w.row(r), xq.data(), cols), exact, 1e-12 * (abs_sum + 1e-30));
      const double tol = 1e-5 * abs_sum;
      EXPECT_NEAR(y_ref_int8[r], exact, tol) << "row " << r;
      EXPECT_NEAR(y_int8[r], exact, tol) << "row " << r << " (" << matmul_target() << ")";
      // f32 path: compared with the same sum over f32 activations; abs_sum is of the q8 terms,
      // which differ from the f32 ones by < 1%, well inside the 1e-5 margin's slack.
      EXPECT_NEAR(y_ref_f32[r], exact_f32x, tol) << "row " << r;
      EXPECT_NEAR(y_f32[r], exact_f32x, tol) << "row " << r << " (" << matmul_target() << ")";
      // And the activation-quantization bound holds for ggml's data.
      EXPECT_LE(std::fabs(exact - exact_f32x),
                q8_activation_error_bound(t, w.row(r), x.data(), cols) * (1 + 1e-9) + 1e-30)
          << "row " << r;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlVecDot, ::testing::Values(GgmlType::Q8_0, GgmlType::Q4_0),
                         [](const auto& p) { return type_file(p.param); });

// Edge cases of the quantizers that the reference vectors do not cover.
TEST(QuantRef, NonFiniteBlocksGetNanScale) {
  std::vector<float> x(64, 1.0f);
  x[3] = INFINITY;
  x[40] = NAN;
  BlockQ8_0 q8[2];
  BlockQ4_0 q4[2];
  quantize_row_q8_0_ref(x.data(), q8, 64);
  quantize_row_q4_0_ref(x.data(), q4, 64);
  EXPECT_TRUE(std::isnan(f16_to_f32(q8[0].d)));
  EXPECT_TRUE(std::isnan(f16_to_f32(q8[1].d)));
  EXPECT_TRUE(std::isnan(f16_to_f32(q4[0].d)));
  std::vector<float> only_second(64, 1.0f);
  only_second[40] = NAN;
  quantize_row_q8_0_ref(only_second.data(), q8, 64);
  EXPECT_EQ(f16_to_f32(q8[0].d), f16_to_f32(f32_to_f16(1.0f / 127.0f)));
  EXPECT_TRUE(std::isnan(f16_to_f32(q8[1].d)));
}

TEST(QuantRef, Q4_0UsesTheSignedMaximumFirstOnTies) {
  std::vector<float> x(32, 0.0f);
  x[5] = -2.0f;
  x[9] = 2.0f;  // same magnitude later: the first (negative) one sets d = -2 / -8 = 0.25
  BlockQ4_0 q;
  quantize_row_q4_0_ref(x.data(), &q, 32);
  EXPECT_EQ(f16_to_f32(q.d), 0.25f);
  float y[32];
  dequantize_row_ref(GgmlType::Q4_0, &q, y, 32);
  EXPECT_EQ(y[5], -2.0f);
  EXPECT_EQ(y[9], 1.75f);  // +8 clamps to 15: (15 - 8) * 0.25
}

}  // namespace
}  // namespace kvpack::model
