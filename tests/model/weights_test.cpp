#include "model/weights.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "cli_run.h"
#include "error_of.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/quant_ref.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

std::string error_of(const GgufTensor& t) {
  return kvpack::testing::error_of([&] { WeightMatrix::from_tensor(t); });
}

GgufTensor tensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                  const std::vector<uint8_t>& data) {
  GgufTensor t;
  t.name = std::move(name);
  t.type = static_cast<uint32_t>(type);
  t.shape = std::move(shape);
  t.bytes = data.size();
  t.data = data.data();
  return t;
}

TEST(Weights, ViewsA2DTensor) {
  const std::vector<uint8_t> data(34 * 2 * 3);
  const WeightMatrix w =
      WeightMatrix::from_tensor(tensor("blk.0.ffn_up.weight", GgmlType::Q8_0, {64, 3}, data));
  EXPECT_EQ(w.name, "blk.0.ffn_up.weight");
  EXPECT_EQ(w.type, GgmlType::Q8_0);
  EXPECT_EQ(w.cols, 64);
  EXPECT_EQ(w.rows, 3);
  EXPECT_EQ(w.row_bytes, 68u);
  EXPECT_EQ(w.row(2), data.data() + 136);
  // 1-D tensors (norm weights) are one row; trailing dims of 1 are accepted.
  const std::vector<uint8_t> f(4 * 10);
  EXPECT_EQ(WeightMatrix::from_tensor(tensor("n", GgmlType::F32, {10}, f)).rows, 1);
  EXPECT_EQ(WeightMatrix::from_tensor(tensor("n", GgmlType::F32, {5, 2, 1, 1}, f)).rows, 2);
}

TEST(Weights, RefusesUnsupportedTypesByName) {
  const std::vector<uint8_t> data(144 * 4);
  const std::string supported =
      "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, "
      "Q6_K, IQ4_XS)";
  EXPECT_EQ(error_of(tensor("blk.0.attn_q.weight", GgmlType::IQ2_XS, {256, 4}, data)),
            "tensor 'blk.0.attn_q.weight' has type IQ2_XS, which kvpack does not support yet " +
                supported);
  GgufTensor unknown = tensor("x", GgmlType::F32, {4}, data);
  unknown.type = 99;
  EXPECT_EQ(error_of(unknown),
            "tensor 'x' has type type 99, which kvpack does not support yet " + supported);
}

TEST(Weights, RefusesBadShapesAndShortData) {
  const std::vector<uint8_t> data(4 * 64);
  EXPECT_NE(error_of(tensor("t3", GgmlType::F32, {4, 4, 4}, data)).find("'t3' has 3 dimensions"),
            std::string::npos);
  EXPECT_NE(error_of(tensor("q", GgmlType::Q8_0, {48, 1}, data)).find("whole 32-value blocks"),
            std::string::npos);
  const std::vector<uint8_t> small(10);
  EXPECT_NE(error_of(tensor("s", GgmlType::F16, {8, 2}, small)).find("holds 10 bytes"),
            std::string::npos);
}

TEST(Weights, AFileIsCheckedForUnsupportedTypesAsAWhole) {
  // Every supported type passes; the first unsupported tensor is named, wherever it sits.
  GgufWriter w;
  for (const WeightTypeTraits& tr : weight_types()) {
    w.add_zero_tensor("ok." + ggml_type_name(static_cast<uint32_t>(tr.type)), {256, 2}, tr.type);
  }
  const std::string path = kvpack::testing::temp_path("weights_types.gguf");
  w.write(path);
  check_weight_types(GgufFile::open(path));
  w.add_zero_tensor("blk.5.ffn_up.weight", {256, 2}, GgmlType::IQ3_S);
  w.add_zero_tensor("blk.6.ffn_up.weight", {256, 2}, GgmlType::TQ1_0);
  w.write(path);
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(
      kvpack::testing::error_of([&] {
        check_weight_types(f);
      }).find("tensor 'blk.5.ffn_up.weight' has type IQ3_S, which kvpack does not support yet"),
      0u);
}

TEST(Weights, ViewsEveryStories260KMatrix) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const GgufFile f = GgufFile::open(path.string());
  for (const GgufTensor& t : f.tensors()) {
    const WeightMatrix w = WeightMatrix::from_tensor(t);
    EXPECT_EQ(w.bytes(), t.bytes) << t.name;
  }
  const WeightMatrix down = WeightMatrix::from_tensor(*f.find_tensor("blk.0.ffn_down.weight"));
  EXPECT_EQ(down.cols, 172);
  EXPECT_EQ(down.rows, 64);
}

}  // namespace
}  // namespace kvpack::model
