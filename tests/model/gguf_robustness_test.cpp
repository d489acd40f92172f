// Regression tests for malformed GGUF inputs found while fuzzing the reader (fuzz/).
#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"
#include "error_of.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace kvpack::model {
namespace {

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return kvpack::testing::error_of([&] { GgufFile::parse(bytes, "bad.gguf"); });
}

// Rewrites the shape of the only tensor of a writer-made file (its info is the file's tail
// before the data: ... n_dims u32, ne u64 x n_dims, type u32, offset u64).
std::vector<uint8_t> with_shape(GgmlType type, uint64_t ne0, uint64_t ne1) {
  GgufWriter w;
  w.add_zero_tensor("t", {32, 1}, type);
  std::vector<uint8_t> b = w.bytes();
  const std::string name = "t";
  const auto at = std::search(b.begin(), b.end(), name.begin(), name.end()) - b.begin();
  const size_t dims = static_cast<size_t>(at) + 1 + 4;  // after the name and n_dims
  std::memcpy(&b[dims], &ne0, 8);
  std::memcpy(&b[dims + 8], &ne1, 8);
  return b;
}

TEST(GgufRobustness, TensorSizesCannotWrapAround) {
  // 2^31 x 2^31 F32 values = 2^64 bytes, which wrapped to a 0-byte tensor that "fit" the file.
  const std::string f32 = parse_error(with_shape(GgmlType::F32, 1ull << 31, 1ull << 31));
  EXPECT_NE(f32.find("tensor 't' (4611686018427387904 F32 values) is larger than the whole file"),
            std::string::npos)
      << f32;
  const std::string f64 = parse_error(with_shape(GgmlType::F64, 1ull << 31, 1ull << 30));
  EXPECT_NE(f64.find("larger than the whole file"), std::string::npos) << f64;
  // The unmodified shape still parses, so the check is not refusing everything.
  const std::vector<uint8_t> ok = with_shape(GgmlType::F32, 32, 1);
  EXPECT_EQ(GgufFile::parse(ok, "ok.gguf").tensors()[0].bytes, 128u);
}

TEST(GgufRobustness, LongKeysWithLongArraysParse) {
  // Each element's error-field name used to be rebuilt from the key: key length x elements
  // string copies. Now it is built once per array.
  const std::string key(100000, 'k');
  GgufWriter w;
  w.set(key, gguf_int_array(GgufType::u8, std::vector<int64_t>(200000, 7)));
  const std::vector<uint8_t> b = w.bytes();
  const GgufFile f = GgufFile::parse(b, "long.gguf");
  ASSERT_EQ(f.get_ints(key)->size(), 200000u);
  EXPECT_EQ(f.get_ints(key)->back(), 7);
  std::vector<uint8_t> cut(b.begin(), b.end() - 100);
  EXPECT_NE(parse_error(cut).find(key.substr(0, 10)), std::string::npos);  // names the key
}

}  // namespace
}  // namespace kvpack::model
