#include "base/terminal.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace kvpack {
namespace {

TEST(Terminal, KeepsPrintableUtf8) {
  EXPECT_EQ(terminal_safe("plain text, \\ and \"quotes\""), "plain text, \\ and \"quotes\"");
  EXPECT_EQ(terminal_safe("mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80"),
            "mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80");
}

TEST(Terminal, EscapesControlsNulAndDel) {
  EXPECT_EQ(terminal_safe("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  EXPECT_EQ(terminal_safe("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(terminal_safe(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(terminal_safe("\x7f\x01"), "\\x7f\\x01");
  // The text form keeps the layout, nothing else.
  EXPECT_EQ(terminal_safe_text("line 1\n\tline 2\x1b[0m\r"), "line 1\n\tline 2\\x1b[0m\\r");
}

TEST(Terminal, EscapesC1ControlsAndBidiOverrides) {
  EXPECT_EQ(terminal_safe("\xc2\x9b"
                          "31m"),
            "\\u{009b}31m");  // C1 CSI, as UTF-8
  EXPECT_EQ(terminal_safe("abc\xe2\x80\xae"
                          "cba"),
            "abc\\u{202e}cba");
  EXPECT_EQ(terminal_safe("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u{2066}x\\u{2069}");
  EXPECT_EQ(terminal_safe("\xc2\xa0"), "\xc2\xa0");  // U+00A0 is printable
}

TEST(Terminal, EscapesBytesThatAreNotUtf8) {
  EXPECT_EQ(terminal_safe("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(terminal_safe("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(terminal_safe("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(terminal_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(terminal_safe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(terminal_safe("\x80x"), "\\x80x");                           // a lone continuation byte
}

TEST(Terminal, Utf8SequenceLengths) {
  uint32_t cp = 0;
  EXPECT_EQ(utf8_sequence("A", &cp), 1u);
  EXPECT_EQ(cp, 0x41u);
  EXPECT_EQ(utf8_sequence("\xc3\xa8", &cp), 2u);
  EXPECT_EQ(cp, 0xe8u);
  EXPECT_EQ(utf8_sequence("\xe2\x82\xac", &cp), 3u);
  EXPECT_EQ(cp, 0x20acu);
  EXPECT_EQ(utf8_sequence("\xf4\x8f\xbf\xbf", &cp), 4u);
  EXPECT_EQ(cp, 0x10ffffu);
  EXPECT_EQ(utf8_sequence("", &cp), 0u);
  EXPECT_EQ(utf8_sequence("\xe0\x80\x80", &cp), 0u);  // overlong
}

TEST(Terminal, ErrorKeepsTheWholeMessage) {
  const Error e(std::string("key 'a\0b' is bad", 16));
  EXPECT_EQ(e.message().size(), 16u);
  EXPECT_EQ(std::string(e.what()), "key 'a");  // what() stops at the NUL: print message()
  const Error copy = e;
  EXPECT_EQ(copy.message(), e.message());
}

}  // namespace
}  // namespace kvpack
