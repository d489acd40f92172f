// q8, q4, q4a against ggml's own encoders' output (../shared/reference/ggml-quant: rows that
// llama.cpp's quantize_row_q*_ref encoded and dequantized, README there). The KV formats decode
// as ggml's q8_0 / q4_0 / q4_1 blocks but choose their steps themselves (format/step_search.h);
// on ggml's reference rows they must lose no more than ggml does: "equal bits, no worse than
// llama.cpp", checked here on llama.cpp's numbers rather than a restatement of its encoder.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kvpack/format.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::format {
namespace {

struct Case {
  FormatId id;
  const char* ggml;  // reference file stem
  Role role;         // q4: keys, whose steps may be negative as ggml's are (values' stay >= 0)
};

// Per row of the reference: squared error of ggml's dequantized row and of the same row through
// the KV format (one token of head dim 256: eight groups of 32, ggml's blocks).
void compare(const Case& c) {
  const std::string stem = std::string("reference/ggml-quant/") + c.ggml;
  KVPACK_SHARED_FILE(bin_path, stem + ".bin");
  KVPACK_SHARED_FILE(json_path, stem + ".json");
  const std::vector<uint8_t> bin = kvpack::testing::read_bytes(bin_path);
  std::ifstream jf(json_path);
  const nlohmann::json j = nlohmann::json::parse(jf);
  const int rows = j["rows"].get<int>(), cols = j["cols"].get<int>();
  ASSERT_EQ(cols, 256);
  ASSERT_EQ(bin.size(), j["file_bytes"].get<size_t>());
  const auto section = [&](const char* name) {
    const size_t off = j["sections"][name]["offset"].get<size_t>();
    std::vector<float> v(static_cast<size_t>(rows) * cols);  // [rows][cols]
    EXPECT_LE(off + v.size() * 4, bin.size());
    std::memcpy(v.data(), bin.data() + off, v.size() * 4);
    return v;
  };
  const std::vector<float> in = section("input_f32"), ggml = section("dequantized_f32");
  auto codec = make_codec(c.id, CodecConfig{c.role, cols, 16, 1, 0});
  std::vector<uint8_t> block(codec->head_bytes());
  std::vector<float> out(static_cast<size_t>(cols));
  for (int r = 0; r < rows; ++r) {
    const float* x = in.data() + static_cast<size_t>(r) * cols;
    codec->encode(0, x, 1, block.data());
    codec->decode(0, block.data(), 1, out.data());
    double ours = 0, theirs = 0, energy = 0;
    for (int i = 0; i < cols; ++i) {
      const double y = ggml[static_cast<size_t>(r) * cols + i];
      ours += (x[i] - static_cast<double>(out[i])) * (x[i] - static_cast<double>(out[i]));
      theirs += (x[i] - y) * (x[i] - y);
      energy += static_cast<double>(x[i]) * x[i];
    }
    std::printf("%s row %d: squared error %.4g, ggml %s %.4g (ratio %.3f)\n",
                info(c.id).name.data(), r, ours, c.ggml, theirs, theirs > 0 ? ours / theirs : 0.0);
    // ggml divides by its unrounded step where the formats use the stored f16 one, so on a row
    // ggml encodes exactly (or nearly: all-zero rows) the formats may differ by f16 rounding of
    // the grid, at most 2^-20 of the row's energy; anywhere else they must not be worse.
    EXPECT_LE(ours, theirs + 0x1p-20 * energy) << info(c.id).name << " row " << r;
  }
}

TEST(GgmlEncoders, Q4NoWorseThanQ4_0OnGgmlReferenceRows) {
  compare({FormatId::q4, "Q4_0", Role::K});
}

TEST(GgmlEncoders, Q4aNoWorseThanQ4_1OnGgmlReferenceRows) {
  compare({FormatId::q4a, "Q4_1", Role::V});
}

TEST(GgmlEncoders, Q8NoWorseThanQ8_0OnGgmlReferenceRows) {
  compare({FormatId::q8, "Q8_0", Role::V});
}

}  // namespace
}  // namespace kvpack::format
