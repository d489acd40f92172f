// The server's response bodies (src/serve): OpenAI's completion and chat completion objects,
// their server-sent-event chunks, usage with prompt_tokens_details.cached_tokens, llama.cpp's
// `timings`, and OpenAI's error object. Text that is not valid UTF-8 (a model can emit any
// bytes) is written with U+FFFD in place of the bad bytes, so every body is valid JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "serve/engine.h"
#include "serve/request.h"

namespace kvpack::serve {

// What every body of one response repeats.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-N" or "chatcmpl-N"
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// JSON text of `j`, invalid UTF-8 replaced.
std::string dump_json(const nlohmann::json& j);

nlohmann::json usage_json(const JobOutcome& o);
nlohmann::json timings_json(const JobOutcome& o);

// The whole non-streamed response.
std::string completion_body(const ResponseMeta& m, const std::string& text, const JobOutcome& o);

// One SSE event "data: {...}\n\n" carrying `text`; `first` adds the chat role.
std::string stream_text_event(const ResponseMeta& m, std::string_view text, bool first);
// The events that end a stream: the chunk with finish_reason, the usage chunk when asked for,
// and "data: [DONE]".
std::string stream_final_events(const ResponseMeta& m, const JobOutcome& o, bool include_usage);

// {"error": {"message", "type", "code", "param"}}.
std::string error_body(int status, std::string_view type, std::string_view message,
                       std::string_view param = {});
std::string error_body(const RequestError& e);

}  // namespace kvpack::serve
