// GgufWriter -> GgufFile round trips: every metadata type, nested arrays, tensors with
// alignment and padding, both versions; and the writer's refusals.
#include "model/gguf_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <numeric>

#include "base/error.h"
#include "cli_run.h"
#include "error_of.h"

namespace kvpack::model {
namespace {

using T = GgufType;

using kvpack::testing::error_of;

GgufWriter every_type_writer(uint64_t alignment, uint32_t version) {
  GgufWriter w(alignment, version);
  w.set("u8", gguf_uint(T::u8, 255))
      .set("i8", gguf_int(T::i8, -128))
      .set("u16", gguf_uint(T::u16, 65535))
      .set("i16", gguf_int(T::i16, -32768))
      .set("u32", gguf_uint(T::u32, 4294967295u))
      .set("i32", gguf_int(T::i32, std::numeric_limits<int32_t>::min()))
      .set("u64", gguf_uint(T::u64, std::numeric_limits<uint64_t>::max()))
      .set("i64", gguf_int(T::i64, std::numeric_limits<int64_t>::min()))
      .set("f32", gguf_float(T::f32, 0.1))
      .set("f64", gguf_float(T::f64, 0.1))
      .set("bool", gguf_bool(true))
      .set("string", gguf_string("h\xc3\xa9llo\n"))
      .set("empty_string", gguf_string(""))
      .set("a_u8", gguf_int_array(T::u8, {0, 1, 255}))
      .set("a_i16", gguf_int_array(T::i16, {-32768, 0, 32767}))
      .set("a_u64", gguf_int_array(T::u64, {0, std::numeric_limits<int64_t>::max()}))
      .set("a_i64", gguf_int_array(T::i64, {std::numeric_limits<int64_t>::min(), 7}))
      .set("a_bool", gguf_int_array(T::boolean, {1, 0, 1}))
      .set("a_f32", gguf_float_array(T::f32, {1.5, -0.1}))
      .set("a_f64", gguf_float_array(T::f64, {0.1, 1e300}))
      .set("a_str", gguf_string_array({"a", "", "ccc"}))
      .set("a_empty", gguf_int_array(T::i32, {}))
      .set("a_nested", gguf_nested_array({gguf_int_array(T::i32, {1, 2}), gguf_string_array({"x"}),
                                          gguf_nested_array({gguf_float_array(T::f64, {2.5})})}));
  return w;
}

TEST(GgufWriter, RoundTripsEveryMetadataType) {
  for (uint32_t version : {2u, 3u}) {
    const GgufWriter w = every_type_writer(32, version);
    const std::vector<uint8_t> bytes = w.bytes();
    const GgufFile f = GgufFile::parse(bytes, "rt.gguf");
    EXPECT_EQ(f.version(), version);
    ASSERT_EQ(f.metadata().size(), 23u);
    EXPECT_EQ(f.metadata()[0].first, "u8");  // insertion order is kept
    EXPECT_EQ(f.get_int("u8"), 255);
    EXPECT_EQ(f.get_int("i8"), -128);
    EXPECT_EQ(f.get_int("u16"), 65535);
    EXPECT_EQ(f.get_int("i16"), -32768);
    EXPECT_EQ(f.get_int("u32"), 4294967295ll);
    EXPECT_EQ(f.get_int("i32"), std::numeric_limits<int32_t>::min());
    EXPECT_EQ(std::get<uint64_t>(f.find("u64")->scalar), std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(f.get_int("i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(f.get_float("f32"), static_cast<double>(0.1f));  // stored as f32
    EXPECT_EQ(f.get_float("f64"), 0.1);
    EXPECT_EQ(f.get_bool("bool"), true);
    EXPECT_EQ(f.get_string("string"), "h\xc3\xa9llo\n");
    EXPECT_EQ(f.get_string("empty_string"), "");
    EXPECT_EQ(*f.get_ints("a_u8"), (std::vector<int64_t>{0, 1, 255}));
    EXPECT_EQ(f.find("a_u8")->elem_type, T::u8);
    EXPECT_EQ(*f.get_ints("a_i16"), (std::vector<int64_t>{-32768, 0, 32767}));
    EXPECT_EQ(*f.get_ints("a_u64"), (std::vector<int64_t>{0, std::numeric_limits<int64_t>::max()}));
    EXPECT_EQ(*f.get_ints("a_i64"), (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 7}));
    EXPECT_EQ(*f.get_ints("a_bool"), (std::vector<int64_t>{1, 0, 1}));
    EXPECT_EQ(f.find("a_bool")->elem_type, T::boolean);
    EXPECT_EQ(*f.get_floats("a_f32"), (std::vector<double>{1.5, static_cast<double>(-0.1f)}));
    EXPECT_EQ(*f.get_floats("a_f64"), (std::vector<double>{0.1, 1e300}));
    EXPECT_EQ(*f.get_strings("a_str"), (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(f.find("a_empty")->array_size(), 0u);
    const GgufValue& nested = *f.find("a_nested");
    ASSERT_EQ(nested.arrays.size(), 3u);
    EXPECT_EQ(nested.arrays[0].ints, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(nested.arrays[1].strings, (std::vector<std::string>{"x"}));
    ASSERT_EQ(nested.arrays[2].arrays.size(), 1u);
    EXPECT_EQ(nested.arrays[2].arrays[0].floats, (std::vector<double>{2.5}));
    // Writing what was read gives the same bytes.
    GgufWriter again(32, version);
    for (const auto& [key, value] : f.metadata()) again.set(key, value);
    EXPECT_EQ(again.bytes(), bytes);
  }
}

TEST(GgufWriter, TensorsAreAlignedPaddedAndExact) {
  for (uint64_t alignment : {32u, 64u, 256u}) {
    GgufWriter w(alignment);
    w.set("general.architecture", gguf_string("llama"));
    std::vector<uint8_t> a(3 * 5 * 4);  // F32 [3, 5]: 60 bytes, not a multiple of any alignment
    std::iota(a.begin(), a.end(), uint8_t{1});
    std::vector<uint8_t> b(2 * 34);  // Q8_0 [64]: two blocks
    std::iota(b.begin(), b.end(), uint8_t{100});
    w.add_tensor("a", {3, 5}, GgmlType::F32, a).add_tensor("b", {64}, GgmlType::Q8_0, b);
    w.add_zero_tensor("c", {32, 2}, GgmlType::F16);
    const std::vector<uint8_t> bytes = w.bytes();
    const GgufFile f = GgufFile::parse(bytes, "t.gguf");
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    ASSERT_EQ(f.tensors().size(), 3u);
    const GgufTensor& ta = f.tensors()[0];
    const GgufTensor& tb = f.tensors()[1];
    const GgufTensor& tc = f.tensors()[2];
    EXPECT_EQ(ta.shape, (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(ta.bytes, 60u);
    EXPECT_EQ(std::vector<uint8_t>(ta.data, ta.data + ta.bytes), a);
    EXPECT_EQ(tb.offset, alignment >= 64 ? alignment : 64u);  // 60 bytes rounded up
    EXPECT_EQ(tb.type, static_cast<uint32_t>(GgmlType::Q8_0));
    EXPECT_EQ(std::vector<uint8_t>(tb.data, tb.data + tb.bytes), b);
    EXPECT_EQ(tc.bytes, 128u);
    EXPECT_EQ(tc.offset % alignment, 0u);
    for (size_t i = 0; i < tc.bytes; ++i) ASSERT_EQ(tc.data[i], 0);
    // Padding after a tensor is zeros, and the file ends on the alignment.
    for (size_t i = ta.bytes; i < tb.offset; ++i) ASSERT_EQ(ta.data[i], 0) << i;
    EXPECT_EQ(bytes.size() % alignment, 0u);
    EXPECT_EQ(f.tensor_bytes(), 60u + 68u + 128u);
  }
}

TEST(GgufWriter, WritesFilesTheReaderOpens) {
  const std::filesystem::path path = kvpack::testing::temp_path("writer_test.gguf");
  every_type_writer(64, 3).add_zero_tensor("w", {8, 4}, GgmlType::F32).write(path.string());
  const GgufFile f = GgufFile::open(path.string());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_int("general.alignment"), 64);
  EXPECT_EQ(f.metadata()[0].first, "general.alignment");  // added ahead of the caller's keys
  EXPECT_EQ(f.find_tensor("w")->bytes, 128u);
  std::filesystem::remove(path);
}

TEST(GgufWriter, RefusesWhatItCannotWrite) {
  EXPECT_NE(error_of([] { gguf_uint(T::u8, 256); }).find("does not fit u8"), std::string::npos);
  EXPECT_NE(error_of([] { gguf_int(T::i8, 128); }).find("does not fit i8"), std::string::npos);
  EXPECT_NE(error_of([] { gguf_int(T::u32, 1); }).find("not a signed type"), std::string::npos);
  EXPECT_NE(error_of([] { gguf_int_array(T::boolean, {2}); }).find("does not fit bool"),
            std::string::npos);
  EXPECT_NE(error_of([] { gguf_nested_array({gguf_bool(true)}); }).find("must be an array"),
            std::string::npos);
  EXPECT_NE(error_of([] { GgufWriter(48); }).find("power of two"), std::string::npos);
  EXPECT_NE(error_of([] { GgufWriter(32, 1); }).find("version 1"), std::string::npos);
  const std::vector<uint8_t> short_data(10);
  EXPECT_NE(error_of([&] {
              GgufWriter().add_tensor("x", {4}, GgmlType::F32, short_data);
            }).find("tensor 'x' needs 16 bytes of F32 data, got 10"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              GgufWriter().add_zero_tensor("q", {33}, GgmlType::Q8_0);
            }).find("not a whole number of Q8_0 blocks"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              GgufWriter()
                  .add_zero_tensor("d", {4}, GgmlType::F32)
                  .add_zero_tensor("d", {4}, GgmlType::F32);
            }).find("duplicate tensor name 'd'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              GgufWriter w(64);
              w.set("general.alignment", gguf_uint(T::u32, 32));
              w.bytes();
            }).find("disagrees"),
            std::string::npos);
}

}  // namespace
}  // namespace kvpack::model
