// Tokenizer rules driven by metadata, on small synthetic vocabularies: special-token parsing,
// BOS/EOS rules, unknown tokens, and a clear error naming the key for malformed vocabularies.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "base/error.h"
#include "error_of.h"
#include "gguf_metadata_builder.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace kvpack::model {
namespace {

using testing::GgufMetadataBuilder;
using ::testing::HasSubstr;
using Ids = std::vector<int32_t>;

// A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens (ids 3..258), then a few
// pieces. Scores make "ab" beat "▁a", so "▁ab" is reached through "ab".
struct SpmVocab {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  SpmVocab(bool byte_tokens = true) {
    if (byte_tokens) {
      for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, 6);
    }
    add("\xE2\x96\x81", -1, 1);  // ▁
    add("a", -2, 1);
    add("b", -2, 1);
    add("\xE2\x96\x81"
        "a",
        -1.5f, 1);
    add("ab", -1, 1);
    add("\xE2\x96\x81"
        "ab",
        -0.5f, 1);
    add("<|user|>", 0, 4);
    add("<|im_end|>", 0, 3);
  }
  void add(std::string text, float score, int32_t type) {
    tokens.push_back(std::move(text));
    scores.push_back(score);
    types.push_back(type);
  }
  int32_t id(std::string_view text) const {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), text) - tokens.begin());
  }
  GgufMetadataBuilder gguf() const {
    GgufMetadataBuilder b;
    b.str("general.architecture", "llama")
        .str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", tokens)
        .f32s("tokenizer.ggml.scores", scores)
        .i32s("tokenizer.ggml.token_type", types);
    return b;
  }
};

// Holds the bytes the GgufFile points into.
struct Loaded {
  std::vector<uint8_t> bytes;
  std::unique_ptr<Tokenizer> tok;
  explicit Loaded(const GgufMetadataBuilder& b) : bytes(b.bytes()) {
    tok = Tokenizer::from_gguf(GgufFile::parse(bytes, "vocab.gguf"));
  }
};

std::string load_error(const GgufMetadataBuilder& b) {
  const std::string e = kvpack::testing::error_of([&] { Loaded loaded(b); });
  if (!e.empty() && std::getenv("KVPACK_PRINT_ERRORS")) std::printf("%s\n", e.c_str());
  return e.empty() ? "(no error)" : e;
}

TEST(TokenizerSpecial, SpmMergesByScoreWithDummyPrefix) {
  const SpmVocab v;
  const Loaded l(v.gguf());
  EXPECT_EQ(l.tok->encode("ab", false, false), Ids{v.id("\xE2\x96\x81"
                                                        "ab")});
  EXPECT_EQ(l.tok->encode("ab ab", true, false), (Ids{1,
                                                      v.id("\xE2\x96\x81"
                                                           "ab"),
                                                      v.id("\xE2\x96\x81"
                                                           "ab")}));
  // "é" has no piece: its two bytes.
  EXPECT_EQ(l.tok->encode("\xC3\xA9", false, false),
            (Ids{v.id("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9}));
}

TEST(TokenizerSpecial, ControlTokensOnlyWithParseSpecial) {
  const SpmVocab v;
  const Loaded l(v.gguf());
  const int32_t a = v.id(
      "\xE2\x96\x81"
      "a");
  EXPECT_EQ(l.tok->encode("<s>a</s>", false, true), (Ids{1, a, 2}));
  // As plain text "<s>" is just bytes (no "<" piece here), never BOS.
  const Ids plain = l.tok->encode("<s>a", false, false);
  EXPECT_EQ(plain, (Ids{v.id("\xE2\x96\x81"), 3 + '<', 3 + 's', 3 + '>', v.id("a")}));
  EXPECT_EQ(l.tok->decode(plain), "<s>a");
  // Decoding: control tokens vanish unless rendered; the dummy prefix after each is undone.
  const Ids ids = l.tok->encode("<s>a</s> a", false, true);
  EXPECT_EQ(l.tok->decode(ids), "a a");
  EXPECT_EQ(l.tok->decode(ids, {.render_special = true}), "<s>a</s> a");
  EXPECT_EQ(l.tok->decode(ids, {.strip_prefix_space = false}), " a  a");
}

TEST(TokenizerSpecial, UserDefinedTokensAlwaysMatch) {
  const SpmVocab v;
  const Loaded l(v.gguf());
  const Ids ids = l.tok->encode("a<|user|>b", false, false);
  EXPECT_EQ(ids, (Ids{v.id("\xE2\x96\x81"
                           "a"),
                      v.id("<|user|>"), v.id("\xE2\x96\x81"), v.id("b")}));
  EXPECT_EQ(l.tok->decode(ids), "a<|user|>b");
  EXPECT_EQ(l.tok->token_to_piece(v.id("<|user|>")), "<|user|>");
}

TEST(TokenizerSpecial, EndOfGenerationAndDefaults) {
  const SpmVocab v;
  const Loaded l(v.gguf());
  EXPECT_EQ(l.tok->bos(), 1);  // SentencePiece defaults when the ids are not in the file
  EXPECT_EQ(l.tok->eos(), 2);
  EXPECT_EQ(l.tok->unk(), 0);
  EXPECT_EQ(l.tok->eot(), v.id("<|im_end|>"));  // found by its text
  EXPECT_TRUE(l.tok->is_end_of_generation(2));
  EXPECT_TRUE(l.tok->is_end_of_generation(v.id("<|im_end|>")));
  EXPECT_FALSE(l.tok->is_end_of_generation(1));
  EXPECT_FALSE(l.tok->is_end_of_generation(-1));
  EXPECT_TRUE(l.tok->add_bos());
  EXPECT_FALSE(l.tok->add_eos());
}

TEST(TokenizerSpecial, AddRulesFromMetadata) {
  const SpmVocab v;
  auto b = v.gguf();
  b.boolean("tokenizer.ggml.add_bos_token", false)
      .boolean("tokenizer.ggml.add_eos_token", true)
      .boolean("tokenizer.ggml.add_space_prefix", false)
      .u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.id("<|im_end|>")));
  const Loaded l(b);
  EXPECT_EQ(l.tok->encode("ab", true, false), (Ids{v.id("ab"), v.id("<|im_end|>")}));
  EXPECT_EQ(l.tok->decode(l.tok->encode(" ab", false, false)), " ab");
}

TEST(TokenizerSpecial, UnknownTokenWithoutByteFallback) {
  const SpmVocab v(/*byte_tokens=*/false);
  const Loaded l(v.gguf());
  EXPECT_EQ(l.tok->encode("a\xC3\xA9", false, false), (Ids{v.id("\xE2\x96\x81"
                                                                "a"),
                                                           0}));
  EXPECT_EQ(l.tok->decode(Ids{0}), "");
  EXPECT_EQ(l.tok->decode(Ids{0}, {.render_special = true}), "<unk>");
}

TEST(TokenizerSpecial, OutOfRangeIdsAreErrors) {
  const SpmVocab v;
  const Loaded l(v.gguf());
  EXPECT_THROW(l.tok->token_to_piece(-1), Error);
  EXPECT_THROW(l.tok->decode(Ids{l.tok->n_vocab()}), Error);
}

TEST(TokenizerMetadata, NoTokenizerGivesNullptr) {
  EXPECT_EQ(Loaded(GgufMetadataBuilder().str("general.architecture", "llama")).tok, nullptr);
  EXPECT_EQ(Loaded(GgufMetadataBuilder().str("tokenizer.ggml.model", "none")).tok, nullptr);
}

TEST(TokenizerMetadata, MalformedSpmVocabularies) {
  const SpmVocab v;
  auto missing_tokens = GgufMetadataBuilder().str("tokenizer.ggml.model", "llama");
  EXPECT_THAT(load_error(missing_tokens), HasSubstr("tokenizer.ggml.tokens is missing"));

  auto short_scores = GgufMetadataBuilder()
                          .str("tokenizer.ggml.model", "llama")
                          .strings("tokenizer.ggml.tokens", v.tokens)
                          .f32s("tokenizer.ggml.scores", {0, 1, 2});
  EXPECT_THAT(
      load_error(short_scores),
      HasSubstr(fmt::format("tokenizer.ggml.scores has 3 entries, expected {}", v.tokens.size())));

  auto no_scores = GgufMetadataBuilder()
                       .str("tokenizer.ggml.model", "llama")
                       .strings("tokenizer.ggml.tokens", v.tokens);
  EXPECT_THAT(load_error(no_scores), HasSubstr("tokenizer.ggml.scores is missing"));

  auto short_types = GgufMetadataBuilder()
                         .str("tokenizer.ggml.model", "llama")
                         .strings("tokenizer.ggml.tokens", v.tokens)
                         .f32s("tokenizer.ggml.scores", v.scores)
                         .i32s("tokenizer.ggml.token_type", {1});
  EXPECT_THAT(load_error(short_types), HasSubstr("tokenizer.ggml.token_type has 1 entries"));

  std::vector<int32_t> types = v.types;
  types[5] = 9;
  auto wrong_type = GgufMetadataBuilder()
                        .str("tokenizer.ggml.model", "llama")
                        .strings("tokenizer.ggml.tokens", v.tokens)
                        .f32s("tokenizer.ggml.scores", v.scores)
                        .i32s("tokenizer.ggml.token_type", types);
  EXPECT_THAT(load_error(wrong_type), HasSubstr("tokenizer.ggml.token_type[5] is 9"));

  types = v.types;
  types[v.id("a")] = 6;  // a byte token must read <0xXX>
  auto bad_byte = GgufMetadataBuilder()
                      .str("tokenizer.ggml.model", "llama")
                      .strings("tokenizer.ggml.tokens", v.tokens)
                      .f32s("tokenizer.ggml.scores", v.scores)
                      .i32s("tokenizer.ggml.token_type", types);
  EXPECT_THAT(load_error(bad_byte), HasSubstr("byte token"));

  SpmVocab dup;
  dup.add("ab", 0, 1);
  EXPECT_THAT(load_error(dup.gguf()), HasSubstr("the same text as tokenizer.ggml.tokens["));

  auto bad_bos = v.gguf();
  bad_bos.u32("tokenizer.ggml.bos_token_id", 100000);
  EXPECT_THAT(load_error(bad_bos), HasSubstr("tokenizer.ggml.bos_token_id is 100000"));

  auto none_bos = v.gguf();  // 0xFFFFFFFF means "no such token"
  none_bos.u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu);
  const Loaded l(none_bos);
  EXPECT_EQ(l.tok->bos(), kNoToken);
  EXPECT_FALSE(l.tok->add_bos());  // the default rule is dropped without a BOS token

  auto wrong_kind = GgufMetadataBuilder()
                        .str("tokenizer.ggml.model", "llama")
                        .i32s("tokenizer.ggml.tokens", {1, 2});
  EXPECT_THAT(load_error(wrong_kind), HasSubstr("tokenizer.ggml.tokens"));

  EXPECT_THAT(load_error(GgufMetadataBuilder().str("tokenizer.ggml.model", "bert")),
              HasSubstr("tokenizer.ggml.model is 'bert'"));
}

// A byte-level BPE vocabulary: "Ġ" is GPT-2's character for the space byte.
GgufMetadataBuilder bpe_gguf(const std::vector<std::string>& merges, std::string_view pre = "") {
  std::vector<std::string> tokens = {"a",
                                     "b",
                                     "ab",
                                     "\xC4\xA0",
                                     "\xC4\xA0"
                                     "ab",
                                     "<|endoftext|>"};
  GgufMetadataBuilder b;
  b.str("tokenizer.ggml.model", "gpt2")
      .strings("tokenizer.ggml.tokens", tokens)
      .i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 3})
      .strings("tokenizer.ggml.merges", merges)
      .u32("tokenizer.ggml.eos_token_id", 5);
  if (!pre.empty()) b.str("tokenizer.ggml.pre", pre);
  return b;
}

TEST(TokenizerMetadata, BpeVocabulary) {
  const Loaded l(bpe_gguf({"a b", "\xC4\xA0 ab"}, "gpt-2"));
  EXPECT_EQ(l.tok->encode("ab ab", true, false), (Ids{2, 4}));  // no BOS rule for GPT-2
  EXPECT_EQ(l.tok->decode(Ids{2, 4}), "ab ab");
  EXPECT_EQ(l.tok->encode("<|endoftext|>", false, true), Ids{5});
  EXPECT_TRUE(l.tok->is_end_of_generation(5));
  EXPECT_EQ(l.tok->eot(), 5);
  // "c" has no token and there is no unknown token.
  EXPECT_THROW(l.tok->encode("c", false, false), Error);
}

TEST(TokenizerMetadata, MalformedBpeVocabularies) {
  auto no_merges = GgufMetadataBuilder()
                       .str("tokenizer.ggml.model", "gpt2")
                       .strings("tokenizer.ggml.tokens", {"a", "b"});
  EXPECT_THAT(load_error(no_merges), HasSubstr("tokenizer.ggml.merges is missing"));
  EXPECT_THAT(load_error(bpe_gguf({"a b", "a z"})),
              HasSubstr("tokenizer.ggml.merges[1] is \"a z\", which refers to \"z\", not a token"));
  EXPECT_THAT(load_error(bpe_gguf({"q b"})), HasSubstr("refers to \"q\""));
  EXPECT_THAT(load_error(bpe_gguf({"b a"})),
              HasSubstr("tokenizer.ggml.merges[0] is \"b a\", but the merged text \"ba\""));
  EXPECT_THAT(load_error(bpe_gguf({"ab"})),
              HasSubstr("tokenizer.ggml.merges[0] is \"ab\", expected two tokens"));
  EXPECT_THAT(load_error(bpe_gguf({"a b"}, "deepseek-coder")),
              HasSubstr("tokenizer.ggml.pre is 'deepseek-coder'"));
  auto bos_missing = bpe_gguf({"a b"});
  bos_missing.boolean("tokenizer.ggml.add_bos_token", true);
  EXPECT_THAT(load_error(bos_missing),
              HasSubstr("tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id"));
}

TEST(TokenizerMetadata, Llama3RulesFromPre) {
  auto b = bpe_gguf({"a b", "\xC4\xA0 ab"}, "llama-bpe");
  b.u32("tokenizer.ggml.bos_token_id", 5);
  const Loaded l(b);
  EXPECT_EQ(l.tok->pre_tokenizer(), PreTokenizer::llama3);
  EXPECT_TRUE(l.tok->add_bos());  // llama3 default
  EXPECT_EQ(l.tok->encode("ab", true, false), (Ids{5, 2}));
}

}  // namespace
}  // namespace kvpack::model
