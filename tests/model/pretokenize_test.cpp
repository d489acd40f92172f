// Pre-tokenizer splits, computed by hand from the upstream regexes (no llama3/qwen2 vocabulary
// files exist here, so the split function itself is what is tested).
#include "model/pretokenize.h"

#include <gtest/gtest.h>

#include <random>

namespace kvpack::model {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(PreTokenizer pre, std::string_view text) {
  Pieces out;
  for (const std::string_view p : pre_tokenize(pre, text)) out.emplace_back(p);
  return out;
}

TEST(PreTokenize, Contractions) {
  const std::string_view s = "I'm don't we'll THEY'RE I'M";
  // GPT-2's contractions are lower case only; Llama 3 and Qwen 2 take either case.
  EXPECT_EQ(split(PreTokenizer::gpt2, s),
            (Pieces{"I", "'m", " don", "'t", " we", "'ll", " THEY", "'", "RE", " I", "'", "M"}));
  const Pieces cased = {"I", "'m", " don", "'t", " we", "'ll", " THEY", "'RE", " I", "'M"};
  EXPECT_EQ(split(PreTokenizer::llama3, s), cased);
  EXPECT_EQ(split(PreTokenizer::qwen2, s), cased);
}

TEST(PreTokenize, DigitRuns) {
  // GPT-2 keeps a run whole with its space; Llama 3 cuts runs into groups of 1-3 from the left
  // and leaves the space on its own; Qwen 2 takes digits one at a time.
  EXPECT_EQ(split(PreTokenizer::gpt2, "12345 6789012"), (Pieces{"12345", " 6789012"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "12345 6789012"),
            (Pieces{"123", "45", " ", "678", "901", "2"}));
  EXPECT_EQ(split(PreTokenizer::qwen2, "12345 6789012"),
            (Pieces{"1", "2", "3", "4", "5", " ", "6", "7", "8", "9", "0", "1", "2"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "3.14159 1,000,000"),
            (Pieces{"3", ".", "141", "59", " ", "1", ",", "000", ",", "000"}));
  // \p{N} is any number, e.g. Arabic-Indic digits.
  EXPECT_EQ(split(PreTokenizer::llama3,
                  "n\xC3\xA9"
                  "e 123abc\xD9\xA3\xD9\xA4\xD9\xA5"),
            (Pieces{"n\xC3\xA9"
                    "e",
                    " ", "123", "abc", "\xD9\xA3\xD9\xA4\xD9\xA5"}));
  EXPECT_EQ(split(PreTokenizer::qwen2, "123abc\xD9\xA3\xD9\xA4"),
            (Pieces{"1", "2", "3", "abc", "\xD9\xA3", "\xD9\xA4"}));
}

TEST(PreTokenize, NonLatinLetters) {
  const std::string_view s = "Привет мир 你好";
  const Pieces expected = {"Привет", " мир", " 你好"};
  EXPECT_EQ(split(PreTokenizer::gpt2, s), expected);
  EXPECT_EQ(split(PreTokenizer::llama3, s), expected);
  EXPECT_EQ(split(PreTokenizer::qwen2, s), expected);
  EXPECT_EQ(split(PreTokenizer::llama3, "ΑΒΓ δ"), (Pieces{"ΑΒΓ", " δ"}));
}

// Whitespace is Unicode's White_Space, as in llama.cpp: U+180E MONGOLIAN VOWEL SEPARATOR (a
// format character since Unicode 6.3, still in PCRE2's \s) is not, U+0085 and U+3000 are (and
// only an ASCII space joins the punctuation after it).
TEST(PreTokenize, WhiteSpaceIsLlamaCpps) {
  for (const PreTokenizer pre : {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::qwen2}) {
    EXPECT_EQ(split(pre, "!\xE1\xA0\x8E!"), Pieces{"!\xE1\xA0\x8E!"}) << pre_tokenizer_name(pre);
    EXPECT_EQ(split(pre, "!\xE3\x80\x80\xE3\x80\x80!"),
              (Pieces{"!", "\xE3\x80\x80", "\xE3\x80\x80", "!"}))
        << pre_tokenizer_name(pre);
  }
  EXPECT_EQ(split(PreTokenizer::llama3, "a\xC2\x85\nb"), (Pieces{"a", "\xC2\x85\n", "b"}));
}

TEST(PreTokenize, NewlinesAndSpaces) {
  // Llama 3 keeps a newline run whole, with the spaces before it.
  EXPECT_EQ(split(PreTokenizer::gpt2, "a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "a\n\nb"), (Pieces{"a", "\n\n", "b"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "x\r\n\r\ny"), (Pieces{"x", "\r\n\r\n", "y"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "a \n b"), (Pieces{"a", " \n", " b"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "  \n\n  end\n"), (Pieces{"  \n\n", " ", " end", "\n"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "  \n\n  end\n"), (Pieces{"  \n\n ", " end", "\n"}));
  // A space run gives its last space to the word after it; trailing spaces stay together.
  for (const PreTokenizer pre : {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::qwen2}) {
    EXPECT_EQ(split(pre, "a   b"), (Pieces{"a", "  ", " b"}));
    EXPECT_EQ(split(pre, "a  "), (Pieces{"a", "  "}));
  }
}

TEST(PreTokenize, Punctuation) {
  EXPECT_EQ(split(PreTokenizer::llama3, "Hello, world!!"), (Pieces{"Hello", ",", " world", "!!"}));
  // Llama 3 lets one non-letter (not a newline) lead a word; GPT-2 does not.
  EXPECT_EQ(split(PreTokenizer::gpt2, "(hello) [x]"), (Pieces{"(", "hello", ")", " [", "x", "]"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "(hello) [x]"), (Pieces{"(hello", ")", " [", "x", "]"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "\tHello"), (Pieces{"\t", "Hello"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "\tHello"), (Pieces{"\tHello"}));
  // ...and punctuation takes the newlines after it.
  EXPECT_EQ(split(PreTokenizer::llama3, "...\n\nx"), (Pieces{"...\n\n", "x"}));
}

TEST(PreTokenize, InvalidUtf8IsItsOwnPiece) {
  EXPECT_EQ(split(PreTokenizer::gpt2,
                  "ab\xFF\xFE"
                  "cd"),
            (Pieces{"ab", "\xFF\xFE", "cd"}));
  EXPECT_EQ(split(PreTokenizer::llama3, "\xC3(x"), (Pieces{"\xC3", "(x"}));
  EXPECT_EQ(split(PreTokenizer::qwen2, "12\xE2\x82"), (Pieces{"1", "2", "\xE2\x82"}));
  EXPECT_TRUE(split(PreTokenizer::gpt2, "").empty());
  EXPECT_EQ(split(PreTokenizer::none, "a b"), (Pieces{"a b"}));
}

// Whatever the bytes, the pieces are non-empty and concatenate to the input.
TEST(PreTokenize, PiecesCoverArbitraryBytes) {
  std::mt19937 rng(7);
  const std::string_view alphabet[] = {"a",
                                       "Z",
                                       " ",
                                       "\n",
                                       "\r",
                                       "\t",
                                       "'",
                                       "s",
                                       "7",
                                       "!",
                                       "é",
                                       "你",
                                       "\xFF",
                                       "\xC3",
                                       "\x80",
                                       "\xF0\x9F\x98\x80",
                                       std::string_view("\0", 1)};
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) text += alphabet[rng() % std::size(alphabet)];
    for (const PreTokenizer pre : {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::qwen2}) {
      std::string joined;
      for (const std::string_view p : pre_tokenize(pre, text)) {
        EXPECT_FALSE(p.empty());
        joined += p;
      }
      EXPECT_EQ(joined, text);
    }
  }
}

TEST(PreTokenize, LongRunsDoNotFail) {
  const std::string spaces(1 << 20, ' ');
  const auto pieces = pre_tokenize(PreTokenizer::llama3, "x" + spaces + "y");
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[1].size(), spaces.size() - 1);
  const std::string digits(100000, '9');
  EXPECT_EQ(pre_tokenize(PreTokenizer::llama3, digits).size(), (digits.size() + 2) / 3);
}

}  // namespace
}  // namespace kvpack::model
