#include <gtest/gtest.h>

#include <set>

#include "base/error.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

TEST(Registry, RowsAreOrderedUniqueAndComplete) {
  std::set<std::string> names;
  int prev = -1;
  for (const auto& f : all_formats()) {
    EXPECT_GT(static_cast<int>(f.id), prev);
    prev = static_cast<int>(f.id);
    EXPECT_TRUE(names.insert(std::string(f.name)).second) << f.name;
    EXPECT_FALSE(f.description.empty()) << f.name;
    EXPECT_NE(f.roles, 0) << f.name;
    EXPECT_EQ(&info(f.id), &f);
    EXPECT_EQ(find_format(f.name), &f);
  }
}

TEST(Registry, LooksUpNamesCaseInsensitivelyAndByAlias) {
  EXPECT_EQ(parse_format("F16"), FormatId::f16);
  EXPECT_EQ(parse_format("fp16"), FormatId::f16);
  EXPECT_EQ(find_format("nope"), nullptr);
}

TEST(Registry, UnknownNameErrorListsKnownFormats) {
  try {
    parse_format("q9");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'q9'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("f16"), std::string::npos) << msg;
  }
}

TEST(Registry, BitsAndBlockSizesAreConsistent) {
  for (const auto& f : all_formats()) {
    for (int d : {8, 64, 96, 128, 256}) {
      for (int t : {16, 32, 256}) {
        const CodecConfig c{f.supports(Role::K) ? Role::K : Role::V, d, t, 2, 1};
        if (!why_unsupported(f.id, c).empty()) continue;
        const auto codec = make_codec(f.id, c);
        EXPECT_EQ(codec->head_bytes() % 64, 0u) << f.name;
        EXPECT_GE(codec->head_bytes() * 8.0, f.bits_per_value(d, t) * d * t) << f.name;
        EXPECT_LT(codec->head_bytes(), f.payload_bytes(d, t) + 64) << f.name;
        EXPECT_EQ(codec->slice_bytes(), 2 * codec->head_bytes());
      }
    }
  }
  EXPECT_DOUBLE_EQ(info(FormatId::f16).bits_per_value(128), 16.0);
  EXPECT_DOUBLE_EQ(info(FormatId::f32).bits_per_value(64), 32.0);
}

TEST(Registry, GroupSizeNeverSpansHeads) {
  EXPECT_EQ(group_size(128), 32);
  EXPECT_EQ(group_size(80), 16);
  EXPECT_EQ(group_size(8), 8);
  EXPECT_EQ(group_size(24), 8);
  EXPECT_EQ(group_size(12), 0);
}

TEST(Registry, LayerSeedsDifferByLayerAndRole) {
  EXPECT_NE(layer_seed(0, Role::K), layer_seed(1, Role::K));
  EXPECT_NE(layer_seed(0, Role::K), layer_seed(0, Role::V));
  EXPECT_EQ(layer_seed(3, Role::V), layer_seed(3, Role::V));
}

}  // namespace
}  // namespace kvpack::format
