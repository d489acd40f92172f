// A chat over one cache sequence: each reply() renders the conversation, evaluates only the
// tokens the cache does not hold yet, samples until an end-of-generation token or the token
// limit, and streams the reply's text as it is generated (a UTF-8 character split across
// tokens is held back until whole). The generation loop the CLI's --chat drives; a later
// Session type can take it over.
//
//   ChatSession chat(fwd, cache, seq, sampler, format, *tok, {.system_prompt = "Be brief."});
//   ChatReply r = chat.reply("Hi!", [](std::string_view text) { print(text); });
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "kvpack/cache.h"
#include "kvpack/model.h"
#include "model/chat.h"
#include "model/sampler.h"

namespace kvpack::model {

struct ChatOptions {
  std::string system_prompt;  // empty: none
  int max_reply_tokens = 512;  // < 0: until end of generation or the context is full
  int64_t context = 4096;  // tokens the sequence may hold
};

// What one reply cost and why it ended.
struct ChatReply {
  std::string text;           // the reply as shown (special tokens not rendered)
  int64_t prompt_tokens = 0;  // tokens evaluated before sampling (the new turn's)
  int64_t kept_tokens = 0;    // cached tokens the turn kept
  double prompt_s = 0;        // their forward time
  int64_t generated = 0;      // tokens sampled, not counting the end-of-generation token
  int64_t decode_evals = 0;   // single-token forward passes
  double decode_s = 0;
  bool end_of_generation = false;  // ended by an end-of-generation token
};

class ChatSession {
 public:
  // Keeps references: all must outlive the session. `seq` must be empty.
  ChatSession(Forward& forward, cache::Cache& cache, cache::SeqId seq, Sampler& sampler,
              const ChatFormat& format, const Tokenizer& tok, ChatOptions options);

  // One turn. `on_text` gets the reply's text as it becomes complete. Throws Error when the
  // template rejects the conversation or it would outgrow the context; the conversation is then
  // as before the call (the cache may have dropped tokens the next turn evaluates again).
  ChatReply reply(std::string user_text, const std::function<void(std::string_view)>& on_text);

  const Conversation& conversation() const { return chat_; }
  // Tokens of the conversation held in the cache (the last generated token of a reply cut by
  // the token limit is evaluated with the next turn).
  int64_t cached_tokens() const { return cached_; }

 private:
  Forward& forward_;
  cache::Cache& cache_;
  cache::SeqId seq_;
  Sampler& sampler_;
  const Tokenizer& tok_;
  ChatOptions options_;
  Conversation chat_;
  int64_t cached_ = 0;
};

}  // namespace kvpack::model
