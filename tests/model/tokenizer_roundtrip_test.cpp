// Properties over many generated inputs, on the real vocabularies: decode inverts encode (also
// for invalid UTF-8), streaming decode equals decode, and special-token text round-trips when it
// is parsed and rendered. fuzz/tokenizer_fuzz.cpp checks the same properties under libFuzzer.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids,
                          DecodeOptions options = {}) {
  StreamDecoder stream(tok, options);
  std::string out;
  for (const int32_t id : ids) {
    const std::string part = stream.push(id);
    out += part;
  }
  return out + stream.flush();
}

void check_round_trips(const Tokenizer& tok, const std::string& text) {
  const std::string shown = fmt::format("{:?}", text);
  // SentencePiece writes ' ' as U+2581, so U+2581 in the input cannot come back as itself.
  if (tok.model() == TokenizerModel::spm && text.find(kEscapedSpace) != std::string::npos) return;
  const std::vector<int32_t> plain = tok.encode(text, false, false);
  EXPECT_EQ(tok.encode(text, false, false), plain) << shown;  // deterministic
  EXPECT_EQ(tok.decode(plain), text) << shown;
  EXPECT_EQ(stream_decode(tok, plain), text) << shown;
  EXPECT_EQ(tok.decode(tok.encode(text, true, false)), text) << shown;
  const std::vector<int32_t> parsed = tok.encode(text, false, true);
  const DecodeOptions render{.render_special = true};
  EXPECT_EQ(tok.decode(parsed, render), text) << shown;
  EXPECT_EQ(stream_decode(tok, parsed, render), text) << shown;
}

void check_generated_inputs(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path.string());
  const auto tok = Tokenizer::from_gguf(file);
  ASSERT_NE(tok, nullptr);
  const std::string_view alphabet[] = {"a",
                                       "Hello",
                                       " ",
                                       "  ",
                                       "\n",
                                       "\r\n",
                                       "\t",
                                       "'s",
                                       "'RE",
                                       "7",
                                       "2024",
                                       ".",
                                       "!!",
                                       "é",
                                       "ö",
                                       "你好",
                                       "мир",
                                       "\xF0\x9F\x98\x80",
                                       "\xE2\x9C\x85",
                                       "<s>",
                                       "</s>",
                                       "<unk>",
                                       "<|endoftext|>",
                                       "<0x41>",
                                       "\xFF",
                                       "\xC3",
                                       "\x80",
                                       "\xE2\x82",
                                       "\xED\xA0\x80",
                                       std::string_view("\0", 1)};
  std::mt19937 rng(1234);
  for (int round = 0; round < 400; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) text += alphabet[rng() % std::size(alphabet)];
    check_round_trips(*tok, text);
  }
  for (int round = 0; round < 200; ++round) {  // raw bytes: mostly invalid UTF-8
    std::string text(rng() % 32, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    check_round_trips(*tok, text);
  }
}

TEST(TokenizerRoundTrip, LlamaSpmGeneratedInputs) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  check_generated_inputs(path);
}

TEST(TokenizerRoundTrip, Gpt2GeneratedInputs) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-gpt-2.gguf");
  check_generated_inputs(path);
}

TEST(TokenizerRoundTrip, SpecialTokensInRealVocabularies) {
  KVPACK_SHARED_FILE(spm_path, "models/ggml-vocab-llama-spm.gguf");
  KVPACK_SHARED_FILE(gpt2_path, "models/ggml-vocab-gpt-2.gguf");
  const auto spm = Tokenizer::from_gguf(GgufFile::open(spm_path.string()));
  // "▁Hello" is 15043: the text after a parsed control token gets the dummy prefix again.
  EXPECT_EQ(spm->encode("<s>Hello</s>", false, true), (std::vector<int32_t>{1, 15043, 2}));
  EXPECT_EQ(spm->encode("Hello", true, false), (std::vector<int32_t>{1, 15043}));
  const std::vector<int32_t> plain = spm->encode("<s>Hello</s>", true, false);
  ASSERT_EQ(plain[0], 1);  // the BOS rule; the text itself yields no control token
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 1);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_TRUE(spm->is_end_of_generation(2));

  const auto gpt2 = Tokenizer::from_gguf(GgufFile::open(gpt2_path.string()));
  EXPECT_EQ(gpt2->bos(), 50256);
  EXPECT_FALSE(gpt2->add_bos());
  EXPECT_EQ(gpt2->encode("Hello<|endoftext|>", true, true), (std::vector<int32_t>{15496, 50256}));
  for (const int32_t id : gpt2->encode("<|endoftext|>", false, false)) EXPECT_NE(id, 50256);
  EXPECT_TRUE(gpt2->is_end_of_generation(50256));
}

// A character split across byte tokens is held back until it is whole.
TEST(TokenizerRoundTrip, StreamHoldsSplitCharacters) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  const auto tok = Tokenizer::from_gguf(GgufFile::open(path.string()));
  const std::vector<int32_t> ids = tok->encode("\xF0\x9F\x98\x80!", false, false);
  // "▁", then the emoji as <0xF0> <0x9F> <0x98> <0x80>, then "!".
  ASSERT_EQ(ids.size(), 6u);
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), "");
  EXPECT_EQ(stream.push(ids[4]), "\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.push(ids[5]), "!");
  EXPECT_EQ(stream.flush(), "");
  // An incomplete character at the end comes out on flush, unchanged.
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.flush(), "\xF0");
}

}  // namespace
}  // namespace kvpack::model
