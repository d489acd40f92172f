// llama.cpp's special-token rules on the real Qwen3, Llama 3 and Gemma 3 vocabularies
// (../shared/models/vocab/README.md lists them): the end-of-generation set, tokens promoted to
// control by their text (notably "</s>"), control text that is plain text unless special tokens
// are parsed, and the clean-up of spaces its detokenizer applies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error_of.h"
#include "gguf_metadata_builder.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> load_vocab(const std::filesystem::path& p) {
  return Tokenizer::from_gguf(GgufFile::open(p.string()));
}

int32_t id_of(const Tokenizer& tok, std::string_view text) {
  const int32_t id = tok.vocab().find(text);
  EXPECT_NE(id, kNoToken) << text;
  return id;
}

TEST(TokenizerEndOfGeneration, Qwen3) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-qwen3.gguf");
  const auto tok = load_vocab(path);
  // <|endoftext|>, <|im_end|>, the FIM pad / repo / file-separator tokens and "</s>" (a
  // NORMAL token that llama.cpp promotes to control).
  EXPECT_THAT(tok->vocab().end_of_generation,
              ElementsAre(id_of(*tok, "</s>"), id_of(*tok, "<|endoftext|>"),
                          id_of(*tok, "<|im_end|>"), id_of(*tok, "<|fim_pad|>"),
                          id_of(*tok, "<|repo_name|>"), id_of(*tok, "<|file_sep|>")));
  EXPECT_EQ(tok->eot(), id_of(*tok, "<|im_end|>"));
  const int32_t s = id_of(*tok, "</s>");
  EXPECT_EQ(tok->vocab().type[s], TokenType::control);
  EXPECT_EQ(tok->encode("a</s>", false, true), (Ids{64, s}));
  EXPECT_THAT(tok->encode("</s>", false, false), ::testing::Not(::testing::Contains(s)));
  // User-defined tokens match without special parsing; control ones only with it.
  EXPECT_EQ(tok->encode("<think>", false, false), Ids{id_of(*tok, "<think>")});
  EXPECT_EQ(tok->encode("<|im_start|>", false, true), Ids{id_of(*tok, "<|im_start|>")});
  EXPECT_GT(tok->encode("<|im_start|>", false, false).size(), 1u);
}

TEST(TokenizerEndOfGeneration, Llama3) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-llama3.gguf");
  const auto tok = load_vocab(path);
  // Llama 3.0's vocabulary: no <|eom_id|> yet (Llama 3.1 added it).
  EXPECT_THAT(tok->vocab().end_of_generation,
              ElementsAre(id_of(*tok, "<|end_of_text|>"), id_of(*tok, "<|eot_id|>")));
  EXPECT_EQ(tok->eot(), id_of(*tok, "<|eot_id|>"));
  EXPECT_EQ(tok->vocab().eom, kNoToken);
  EXPECT_TRUE(tok->add_bos());
}

TEST(TokenizerEndOfGeneration, Gemma3) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-gemma3.gguf");
  const auto tok = load_vocab(path);
  const int32_t s = id_of(*tok, "</s>");  // a USER_DEFINED HTML tag in the file
  EXPECT_THAT(tok->vocab().end_of_generation,
              ElementsAre(id_of(*tok, "<eos>"), id_of(*tok, "<end_of_turn>"), s));
  EXPECT_EQ(tok->vocab().type[s], TokenType::control);
  EXPECT_EQ(tok->encode("</s>", false, true), Ids{s});
  EXPECT_THAT(tok->encode("</s>", false, false), ::testing::Not(::testing::Contains(s)));
  // Other HTML tags stay user-defined and always match.
  EXPECT_EQ(tok->encode("<table>", false, false), Ids{id_of(*tok, "<table>")});
  EXPECT_FALSE(tok->vocab().add_space_prefix);
}

// llama.cpp's detokenizer cleans up spaces for GPT-2 and Llama 3 vocabularies, not for Qwen 2
// or SentencePiece ones; kvpack does it only when asked, so decode stays an exact inverse.
TEST(TokenizerDecode, CleanUpSpacesAsLlamaCpp) {
  KVPACK_SHARED_FILE(llama3, "models/vocab/ggml-vocab-llama3.gguf");
  KVPACK_SHARED_FILE(qwen3, "models/vocab/ggml-vocab-qwen3.gguf");
  const DecodeOptions clean{.clean_up_spaces = true};
  const std::string text = "Hi , you ! It 's a ' b ' test . I 've , you 're , we 'll , I 'd .";
  const auto l = load_vocab(llama3);
  const Ids ids = l->encode(text, false, false);
  EXPECT_EQ(l->decode(ids), text);
  EXPECT_EQ(l->decode(ids, clean), "Hi, you! It's a'b'test. I've, you're, we 'll, I 'd.");
  const auto q = load_vocab(qwen3);
  EXPECT_EQ(q->decode(q->encode(text, false, false), clean), text);
}

// Metadata that names end-of-generation tokens, and llama.cpp's exceptions to its text rules.
TEST(TokenizerEndOfGeneration, FromMetadataAndExceptions) {
  const auto gguf = [](std::vector<std::string> tokens, std::vector<int32_t> types) {
    testing::GgufMetadataBuilder b;
    std::vector<float> scores(tokens.size(), 0.0f);
    b.str("general.architecture", "llama")
        .str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", tokens)
        .f32s("tokenizer.ggml.scores", scores)
        .i32s("tokenizer.ggml.token_type", types);
    return b;
  };
  const std::vector<std::string> tokens = {"<unk>", "<s>",     "</s>",       "<|tool_response>",
                                           "x",     "<|end|>", "<|return|>", "<|call|>"};
  const std::vector<int32_t> types = {2, 3, 4, 4, 1, 3, 3, 3};
  auto b = gguf(tokens, types);
  b.i32s("tokenizer.ggml.eog_token_ids", {4});
  const std::vector<uint8_t> bytes = b.bytes();
  const auto tok = Tokenizer::from_gguf(GgufFile::parse(bytes, "v.gguf"));
  // With "<|tool_response>" present "</s>" is a normal token, even as EOS (llama.cpp applies
  // the rule last); with "<|return|>" and "<|call|>", "<|end|>" does not end generation.
  EXPECT_THAT(tok->vocab().end_of_generation, ElementsAre(3, 4, 6, 7));
  EXPECT_EQ(tok->vocab().type[2], TokenType::normal);
  EXPECT_EQ(tok->vocab().type[3], TokenType::control);  // "<|tool_response>" promoted
  EXPECT_EQ(tok->vocab().type[5], TokenType::user_defined);

  auto bad = gguf(tokens, types);
  bad.i32s("tokenizer.ggml.eog_token_ids", {8});
  const std::vector<uint8_t> bad_bytes = bad.bytes();
  EXPECT_THAT(kvpack::testing::error_of(
                  [&] { Tokenizer::from_gguf(GgufFile::parse(bad_bytes, "v.gguf")); }),
              HasSubstr("tokenizer.ggml.eog_token_ids[0] is 8, but tokenizer.ggml.tokens has "
                        "only 8 tokens"));
}

}  // namespace
}  // namespace kvpack::model
