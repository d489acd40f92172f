// The stories260K vocabulary (llama2.c's 512-token SentencePiece model) end to end: the golden
// greedy generation decodes to llama2.c's expected text, and every piece matches tok512.bin.
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using kvpack::testing::read_text;

std::unique_ptr<Tokenizer> load(const std::filesystem::path& p) {
  return Tokenizer::from_gguf(GgufFile::open(p.string()));
}

TEST(TokenizerStories, Metadata) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const auto tok = load(path);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model(), TokenizerModel::spm);
  EXPECT_EQ(tok->n_vocab(), 512);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->unk(), 0);
  EXPECT_TRUE(tok->add_bos());  // no add_bos key: SentencePiece default
  EXPECT_FALSE(tok->add_eos());
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_FALSE(tok->is_end_of_generation(1));
  EXPECT_FALSE(tok->is_end_of_generation(403));
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(3 + 0x41), "A");  // <0x41>
}

// llama2.c rules: the ids start with BOS, the space after BOS is stripped, <0xXX> is the byte.
TEST(TokenizerStories, GreedyIdsDecodeToExpectedText) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(ids_path, "models/stories260K.greedy200.ids.txt");
  KVPACK_SHARED_FILE(text_path, "models/stories260K.greedy200.expected.txt");
  const auto tok = load(path);
  std::vector<int32_t> ids;
  std::istringstream in(read_text(ids_path));
  for (int32_t id; in >> id;) ids.push_back(id);
  ASSERT_EQ(ids.size(), 201u);  // BOS, then one id per position of llama2.c's `-n 200` run
  ASSERT_EQ(ids[0], tok->bos());
  const std::string expected = read_text(text_path);
  EXPECT_EQ(tok->decode(ids), expected);

  StreamDecoder stream(*tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  EXPECT_EQ(streamed, expected);

  // Encoding the text back (with BOS) and decoding it is the identity too.
  const std::vector<int32_t> again = tok->encode(expected, true, false);
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again[0], tok->bos());
  EXPECT_EQ(tok->decode(again), expected);
}

// tok512.bin is llama2.c's export of the same vocabulary: U+2581 as ' ', byte tokens kept as
// "<0xXX>" text, BOS/EOS as "\n<s>\n" / "\n</s>\n". Our pieces must agree token by token.
TEST(TokenizerStories, PiecesMatchLlama2cExport) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(bin_path, "models/tok512.bin");
  const auto tok = load(path);
  const std::string bin = read_text(bin_path);
  size_t at = 4;  // max_token_length
  for (int32_t id = 0; id < 512; ++id) {
    ASSERT_LE(at + 8, bin.size());
    float score;
    uint32_t len;
    std::memcpy(&score, bin.data() + at, 4);
    std::memcpy(&len, bin.data() + at + 4, 4);
    at += 8;
    ASSERT_LE(at + len, bin.size());
    const std::string text = bin.substr(at, len);
    at += len;
    EXPECT_EQ(tok->vocab().score[id], score) << "token " << id;
    const TokenType type = tok->vocab().type[id];
    if (type == TokenType::normal) {
      EXPECT_EQ(tok->token_to_piece(id), text) << "token " << id;
    } else if (type == TokenType::byte) {
      EXPECT_EQ(tok->vocab().text[id], text) << "token " << id;
      EXPECT_EQ(tok->token_to_piece(id).size(), 1u);
    }
  }
  EXPECT_EQ(at, bin.size());
}

TEST(TokenizerStories, EncodesAndDecodes) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const auto tok = load(path);
  const std::string text = "Once upon a time, Lily saw a big dog.\nThe end.";
  const std::vector<int32_t> ids = tok->encode(text, true, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text);
  // Characters outside the 512 tokens fall back to bytes and still round-trip.
  const std::string rare = "Zoë said \xE2\x80\x9Chi\xE2\x80\x9D \xF0\x9F\x98\x80";
  EXPECT_EQ(tok->decode(tok->encode(rare, true, false)), rare);
  // Empty text: BOS alone with add_special, nothing without.
  EXPECT_EQ(tok->encode("", true, false), std::vector<int32_t>{1});
  EXPECT_TRUE(tok->encode("", false, false).empty());
}

}  // namespace
}  // namespace kvpack::model
