// Conversations turn by turn with the real Qwen3, Llama 3 and Gemma 3 vocabularies and their
// chat templates (../shared/models/vocab): each turn evaluates only the new tokens when earlier
// turns render unchanged, and re-evaluates from the first changed token when the template
// rewrites them; BOS appears once; the built-in formats agree with the real templates.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "error_of.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using ::testing::HasSubstr;

struct Loaded {
  GgufFile file;
  std::unique_ptr<Tokenizer> tok;
  explicit Loaded(const std::filesystem::path& p)
      : file(GgufFile::open(p.string())), tok(Tokenizer::from_gguf(file)) {}
};

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text) {
  return tok.encode(text, false, true);
}

std::string text_of(const Tokenizer& tok, std::span<const int32_t> ids) {
  return tok.decode(ids, {.render_special = true, .strip_prefix_space = false});
}

// Feeds a reply as if the model had generated these tokens, then ends it.
std::string reply(Conversation& chat, const Tokenizer& tok, std::string_view text) {
  for (const int32_t id : tok.encode(text, false, false)) chat.add_generated(id);
  return chat.end_reply();
}

TEST(Chat, Qwen3TurnsEvaluateOnlyNewTokens) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-qwen3.gguf");
  const Loaded m(path);
  const ChatFormat format = ChatFormat::from_gguf(m.file, *m.tok);
  EXPECT_EQ(format.description(), "the GGUF's chat template");
  Conversation chat(format, *m.tok, "Be brief.");

  const ChatTurn first = chat.add_user("Hi!");
  EXPECT_EQ(first.keep, 0u);
  const std::string prompt =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(first.tokens, encode(*m.tok, prompt));  // no BOS: Qwen3 does not add one
  EXPECT_EQ(reply(chat, *m.tok, "Hello."), "Hello.");

  const size_t cached = chat.tokens().size();
  const ChatTurn second = chat.add_user("Bye.");
  EXPECT_EQ(second.keep, cached);
  EXPECT_EQ(text_of(*m.tok, second.tokens),
            "<|im_end|>\n<|im_start|>user\nBye.<|im_end|>\n<|im_start|>assistant\n");
  // The conversation's tokens are what the whole rendering tokenizes to.
  EXPECT_EQ(chat.tokens(), encode(*m.tok, format.render(chat.messages(), true)));
}

TEST(Chat, Qwen3DroppedReasoningIsReEvaluatedFromTheFirstChange) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-qwen3.gguf");
  const Loaded m(path);
  const ChatFormat format = ChatFormat::from_gguf(m.file, *m.tok);
  Conversation chat(format, *m.tok);
  const ChatTurn first = chat.add_user("2+2?");
  reply(chat, *m.tok, "<think>\nadd\n</think>\n\n4");
  const ChatTurn second = chat.add_user("3+3?");
  // Older turns lose their <think> block, so the cache is kept up to the reply's start.
  EXPECT_EQ(second.keep, first.tokens.size());
  EXPECT_EQ(text_of(*m.tok, second.tokens),
            "4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, Llama3AddsBosOnceAndTrimsReplies) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-llama3.gguf");
  const Loaded m(path);
  const ChatFormat format = ChatFormat::from_gguf(m.file, *m.tok);
  Conversation chat(format, *m.tok, "Sys");
  const ChatTurn first = chat.add_user("Hi");
  ASSERT_FALSE(first.tokens.empty());
  EXPECT_EQ(first.tokens[0], m.tok->bos());
  EXPECT_EQ(std::count(first.tokens.begin(), first.tokens.end(), m.tok->bos()), 1);
  EXPECT_EQ(text_of(*m.tok, first.tokens),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const size_t before_reply = chat.tokens().size();
  reply(chat, *m.tok, "Hello!\n");  // the template trims the reply: "\n" is not kept
  const ChatTurn second = chat.add_user("Again");
  EXPECT_GE(second.keep, before_reply);
  EXPECT_LT(second.keep, chat.tokens().size());
  // After the re-evaluation the cache holds exactly what the whole conversation tokenizes to.
  const std::string all = format.render(chat.messages(), true);
  std::vector<int32_t> expected = {m.tok->bos()};
  const std::vector<int32_t> rest =
      encode(*m.tok, std::string_view(all).substr(m.tok->vocab().text[m.tok->bos()].size()));
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_EQ(chat.tokens(), expected);
}

TEST(Chat, Gemma3FoldsTheSystemPromptIntoTheFirstTurn) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-gemma3.gguf");
  const Loaded m(path);
  const ChatFormat format = ChatFormat::from_gguf(m.file, *m.tok);
  Conversation chat(format, *m.tok, "Sys");
  const ChatTurn first = chat.add_user("Hi");
  EXPECT_EQ(first.tokens[0], m.tok->bos());
  EXPECT_EQ(text_of(*m.tok, first.tokens),
            "<bos><start_of_turn>user\nSys\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  reply(chat, *m.tok, "Hello");
  const size_t cached = chat.tokens().size();
  const ChatTurn second = chat.add_user("Bye");
  EXPECT_EQ(second.keep, cached);
  EXPECT_EQ(text_of(*m.tok, second.tokens),
            "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_TRUE(m.tok->is_end_of_generation(m.tok->vocab().find("<end_of_turn>")));
}

// kvpack's built-in formats render exactly as the real templates for plain conversations.
TEST(Chat, BuiltinFormatsAgreeWithTheRealTemplates) {
  const std::vector<std::vector<ChatMessage>> conversations = {
      {{"user", "Hi"}},
      {{"system", "Sys"}, {"user", "Hi"}},
      {{"system", "Sys"}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}},
  };
  for (const auto& [vocab, kind] :
       {std::pair{"qwen3", BuiltinChat::chatml}, std::pair{"llama3", BuiltinChat::llama3},
        std::pair{"gemma3", BuiltinChat::gemma}}) {
    KVPACK_SHARED_FILE(path, std::string("models/vocab/ggml-vocab-") + vocab + ".gguf");
    const Loaded m(path);
    const ChatFormat real = ChatFormat::from_gguf(m.file, *m.tok);
    const ChatFormat builtin = ChatFormat::builtin(kind, *m.tok);
    for (const auto& c : conversations) {
      EXPECT_EQ(builtin.render(c, true), real.render(c, true)) << vocab << " " << c.size();
    }
  }
}

TEST(Chat, FilesWithoutTemplatesUseTheBuiltinFormatOrFailClearly) {
  KVPACK_SHARED_FILE(qwen, "models/arch/models/qwen2-f16.gguf");
  KVPACK_SHARED_FILE(gemma, "models/arch/models/gemma2-f16.gguf");
  const Loaded q(qwen);
  std::string warning;
  const ChatFormat f = ChatFormat::from_gguf(q.file, *q.tok, &warning);
  EXPECT_THAT(warning, AllOf(HasSubstr("has no tokenizer.chat_template"),
                             HasSubstr("built-in chatml format")));
  EXPECT_EQ(f.render({{{"user", "x"}}}, true),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
  const Loaded g(gemma);  // a truncated vocabulary without Gemma's turn markers
  EXPECT_THAT(kvpack::testing::error_of([&] { ChatFormat::from_gguf(g.file, *g.tok); }),
              AllOf(HasSubstr("gemma2-f16.gguf"), HasSubstr("no built-in chat format"),
                    HasSubstr("'gemma2'")));
}

TEST(Chat, TemplateRejectionsLeaveTheConversationUnchanged) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-gemma3.gguf");
  const Loaded m(path);
  const ChatFormat format = ChatFormat::from_gguf(m.file, *m.tok);
  Conversation chat(format, *m.tok);
  chat.add_user("one");
  // Gemma's template requires user and model turns to alternate: a second user turn without a
  // reply in between is refused, and the conversation stays as it was.
  const std::vector<int32_t> before = chat.tokens();
  EXPECT_THAT(kvpack::testing::error_of([&] { chat.add_user("two"); }),
              HasSubstr("Conversation roles must alternate"));
  EXPECT_EQ(chat.tokens(), before);
  EXPECT_EQ(chat.messages().size(), 1u);
}

}  // namespace
}  // namespace kvpack::model
