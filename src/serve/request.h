// The server's requests as typed values (src/serve): JSON bodies of /v1/completions,
// /v1/chat/completions, /tokenize and /detokenize parsed and checked field by field. Anything a
// client gets wrong -- malformed JSON, a wrong type, an unknown or unsupported field, a value
// out of range -- throws RequestError naming the field, which the HTTP layer sends as OpenAI's
// {"error": {"message", "type", "code", "param"}} with its status. fuzz/serve_request_fuzzer.cpp
// holds these parsers to that for arbitrary bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/sampler.h"

namespace kvpack::serve {

// A request the server refuses: the HTTP status and OpenAI's error fields.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, std::string type, std::string message, std::string param = {});
  int status() const { return status_; }
  // "invalid_request_error", "not_found_error", "rate_limit_error", "unavailable_error",
  // "server_error"
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }  // the field at fault ("" when none)

 private:
  int status_;
  std::string type_;
  std::string param_;
};

// Throws a 400 invalid_request_error about `param`.
[[noreturn]] void bad_field(std::string param, std::string message);

struct ChatMessage {
  std::string role;  // system, user or assistant ("developer" is read as system)
  std::string content;
};

enum class Endpoint { kCompletions, kChat };

// One generation request of either endpoint, validated; the model-dependent checks (token ids
// inside the vocabulary, the prompt against the context, the K/V policy against the pools) are
// the engine's.
struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                               // as the client named it (echoed back)
  std::string prompt;                              // completions: the prompt text
  std::optional<std::vector<int32_t>> prompt_ids;  // completions: a prompt given as token ids
  std::vector<ChatMessage> messages;               // chat: the conversation
  int max_tokens = -1;                             // -1: until the context is full
  model::SamplerConfig sampling;  // kvpack run's defaults unless the request sets them
  std::optional<uint64_t> seed;   // absent: drawn per request
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool cache_prompt = true;    // reuse cached pages of the prompt (llama.cpp's field)
  bool ignore_eos = false;
  std::string kv;  // K/V policy of the pool to use; "": the default
};

CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint);

// POST /tokenize: {"content": string, "add_special": bool, "parse_special": bool,
// "with_pieces": bool}.
struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body);

// POST /detokenize: {"tokens": [int, ...]}.
struct DetokenizeRequest {
  std::vector<int32_t> tokens;
};
DetokenizeRequest parse_detokenize_request(std::string_view body);

// Limits the parsers enforce (documented in docs/cli.md).
inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 256;
inline constexpr size_t kMaxMessages = 4096;
inline constexpr int kMaxTokensLimit = 1 << 24;

}  // namespace kvpack::serve
