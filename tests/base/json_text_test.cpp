#include "base/json_text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kvpack {
namespace {

// nlohmann's dump() throws type_error 316 on the first byte that is not UTF-8: every --json
// writer aborted on such a file name, model name or generated answer.
TEST(JsonText, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  nlohmann::ordered_json j = {{"name",
                               "a\xff\xfe"
                               "b"},
                              {"ok", "mod\xc3\xa8le"},
                              {"cut", "\xe2\x82"},
                              {"nul", std::string("x\0y", 3)}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  const std::string text = json_text(j, -1);
  EXPECT_EQ(text,
            "{\"name\":\"a\xef\xbf\xbd\xef\xbf\xbd"
            "b\",\"ok\":\"mod\xc3\xa8le\",\"cut\":"
            "\"\xef\xbf\xbd\",\"nul\":\"x\\u0000y\"}");
  const auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["ok"], "mod\xc3\xa8le");
  EXPECT_EQ(json_text(nlohmann::json::array({1, 2}), 2), "[\n  1,\n  2\n]");
}

}  // namespace
}  // namespace kvpack
