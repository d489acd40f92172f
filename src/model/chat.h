// Chat: how a conversation becomes tokens for a model, turn by turn.
//
//   ChatFormat format = ChatFormat::from_gguf(file, tok);   // the GGUF's template, or built-in
//   Conversation chat(format, tok, "You are terse.");
//   ChatTurn turn = chat.add_user("Hi!");    // keep turn.keep cached tokens, evaluate the rest
//   ... sample; chat.add_generated(id) for each token until tok.is_end_of_generation(id) ...
//   std::string reply = chat.end_reply();
//
// The conversation keeps the token ids its cache should hold, so each turn evaluates only what
// is new: the rendered conversation's text past what is already cached (llama.cpp's way), or,
// when a template rewrites earlier turns (Qwen3 drops old reasoning, Llama 3 trims replies),
// the tokens past the longest prefix that is still the same.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace kvpack::model {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// kvpack's own prompt formats, used when a GGUF has no chat template or one outside the subset.
enum class BuiltinChat {
  chatml,  // <|im_start|>role\n...<|im_end|>\n (Qwen 2, 2.5, 3)
  llama3,  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> (Llama 3)
  gemma,   // <start_of_turn>user\n...<end_of_turn>\n, system text leads the first user turn
};

class ChatFormat {
 public:
  // The file's tokenizer.chat_template when present and inside the subset; otherwise the
  // built-in format of the architecture or vocabulary (qwen* or <|im_start|>: chatml, llama with
  // <|start_header_id|>: llama3, gemma* or <start_of_turn>: gemma), with `warning` saying why
  // the template was not used. Throws Error naming the file when neither applies.
  static ChatFormat from_gguf(const GgufFile& file, const Tokenizer& tok,
                              std::string* warning = nullptr);
  // A template given as text (e.g. kvpack run --chat-template-file); Error if outside the subset.
  static ChatFormat from_template(std::string_view source, const Tokenizer& tok);
  static ChatFormat builtin(BuiltinChat kind, const Tokenizer& tok);

  // The prompt text for `messages`; with add_generation_prompt it ends where the assistant's
  // reply begins. Throws Error when the template fails or raises (e.g. a role it rejects).
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // "the GGUF's chat template", "chatml (built-in)", ...
  const std::string& description() const { return description_; }

 private:
  ChatFormat() = default;
  std::string render_builtin(std::span<const ChatMessage> messages, bool add_generation) const;

  std::optional<ChatTemplate> template_;
  BuiltinChat builtin_ = BuiltinChat::chatml;
  std::string bos_text_;  // the BOS and EOS tokens' texts, as templates see them
  std::string eos_text_;
  std::string description_;
};

// What to evaluate for a turn: keep the first `keep` tokens already cached (truncate the rest)
// and evaluate `tokens` after them.
struct ChatTurn {
  size_t keep = 0;
  std::vector<int32_t> tokens;
};

class Conversation {
 public:
  // `system_prompt` empty: no system message.
  Conversation(const ChatFormat& format, const Tokenizer& tok, std::string system_prompt = {});

  // Adds a user message; returns the tokens to evaluate before sampling the reply. On Error
  // (the template raised) the conversation is unchanged.
  ChatTurn add_user(std::string text);
  // A sampled token of the reply (not the end-of-generation token that ends it).
  void add_generated(int32_t id);
  // Ends the reply and records it as the assistant's message; returns its text.
  std::string end_reply();

  // Every token of the conversation so far, as the cache should hold them.
  const std::vector<int32_t>& tokens() const { return ids_; }
  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  std::vector<int32_t> tokenize_full(const std::string& text) const;

  const ChatFormat* format_;
  const Tokenizer* tok_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> ids_;  // the conversation's tokens
  std::string text_;          // the text ids_ stand for (special tokens as their text)
  std::vector<int32_t> reply_;
};

// Streams text out of a reply token by token: special tokens are not shown, and a UTF-8
// character split across tokens is held back until it is whole (see StreamDecoder).
inline DecodeOptions chat_output_options() {
  return DecodeOptions{.render_special = false, .strip_prefix_space = false};
}

}  // namespace kvpack::model
