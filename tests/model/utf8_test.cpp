#include "model/utf8.h"

#include <gtest/gtest.h>

namespace kvpack::model {
namespace {

TEST(Utf8, CharLengthAcceptsOnlyWellFormedSequences) {
  EXPECT_EQ(utf8_char_length("a", 0), 1u);
  EXPECT_EQ(utf8_char_length("\xC3\xA9", 0), 2u);
  EXPECT_EQ(utf8_char_length("\xE2\x96\x81", 0), 3u);
  EXPECT_EQ(utf8_char_length("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_char_length("\xC0\x80", 0), 1u);          // overlong
  EXPECT_EQ(utf8_char_length("\xE0\x80\x80", 0), 1u);      // overlong
  EXPECT_EQ(utf8_char_length("\xED\xA0\x80", 0), 1u);      // surrogate
  EXPECT_EQ(utf8_char_length("\xF4\x90\x80\x80", 0), 1u);  // above U+10FFFF
  EXPECT_EQ(utf8_char_length("\xE2\x96", 0), 1u);          // cut short
  EXPECT_EQ(utf8_char_length("\x80", 0), 1u);              // stray continuation
  EXPECT_EQ(utf8_char_length("\xC3(", 0), 1u);
}

TEST(Utf8, CodePointsAndEncoding) {
  EXPECT_EQ(utf8_code_point("\xE2\x96\x81", 0), 0x2581);
  EXPECT_EQ(utf8_code_point("\xF0\x9F\x98\x80", 0), 0x1F600);
  EXPECT_EQ(utf8_code_point("\xFF", 0), -1);
  for (const uint32_t cp : {0x41u, 0xE9u, 0x120u, 0x2581u, 0xFFFDu, 0x1F600u, 0x10FFFFu}) {
    std::string s;
    utf8_append(s, cp);
    EXPECT_EQ(utf8_char_length(s, 0), s.size());
    EXPECT_EQ(utf8_code_point(s, 0), static_cast<int32_t>(cp));
  }
}

TEST(Utf8, IncompleteTail) {
  EXPECT_EQ(utf8_incomplete_tail(""), 0u);
  EXPECT_EQ(utf8_incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0"), 1u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xE2\x96"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("a\xED\xA0"), 0u);  // would be a surrogate: invalid, not held
  EXPECT_EQ(utf8_incomplete_tail("a\xFF"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\x80\x80\x80"), 0u);
}

}  // namespace
}  // namespace kvpack::model
