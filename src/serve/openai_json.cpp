#include "serve/openai_json.h"

namespace kvpack::serve {

using nlohmann::json;

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usage_json(const JobOutcome& o) {
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.completion_tokens},
          {"total_tokens", o.prompt_tokens + o.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

json timings_json(const JobOutcome& o) {
  const int64_t prompt_n = o.prompt_tokens - o.cached_tokens;
  const auto per_token = [](double ms, int64_t n) { return n > 0 ? ms / n : 0.0; };
  const auto per_second = [](double ms, int64_t n) { return ms > 0 ? 1e3 * n / ms : 0.0; };
  // predicted_n counts the tokens after the first, the ones predicted_ms covers.
  const int64_t predicted_n = std::max<int64_t>(o.completion_tokens - 1, 0);
  return {{"cache_n", o.cached_tokens},
          {"prompt_n", prompt_n},
          {"prompt_ms", o.prompt_ms},
          {"prompt_per_token_ms", per_token(o.prompt_ms, prompt_n)},
          {"prompt_per_second", per_second(o.prompt_ms, prompt_n)},
          {"predicted_n", predicted_n},
          {"predicted_ms", o.predicted_ms},
          {"predicted_per_token_ms", per_token(o.predicted_ms, predicted_n)},
          {"predicted_per_second", per_second(o.predicted_ms, predicted_n)}};
}

namespace {

bool is_chat(const ResponseMeta& m) {
  return m.endpoint == Endpoint::kChat;
}

json finish_reason_json(const JobOutcome& o) {
  const std::string_view r = model::finish_reason_name(o.reason);
  return r.empty() ? json(nullptr) : json(std::string(r));
}

json envelope(const ResponseMeta& m, bool chunk) {
  return {{"id", m.id},
          {"object",
           is_chat(m) ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"system_fingerprint", "kvpack"}};
}

std::string event(const json& j) {
  return "data: " + dump_json(j) + "\n\n";
}

}  // namespace

std::string completion_body(const ResponseMeta& m, const std::string& text, const JobOutcome& o) {
  json j = envelope(m, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason_json(o)}, {"logprobs", nullptr}};
  if (is_chat(m)) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(o);
  j["timings"] = timings_json(o);
  return dump_json(j);
}

std::string stream_text_event(const ResponseMeta& m, std::string_view text, bool first) {
  json j = envelope(m, true);
  json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
  if (is_chat(m)) {
    choice["delta"] =
        first ? json{{"role", "assistant"}, {"content", text}} : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  return event(j);
}

std::string stream_final_events(const ResponseMeta& m, const JobOutcome& o, bool include_usage) {
  json j = envelope(m, true);
  json choice = {{"index", 0}, {"finish_reason", finish_reason_json(o)}, {"logprobs", nullptr}};
  if (is_chat(m)) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  j["choices"] = json::array({choice});
  j["timings"] = timings_json(o);
  std::string out = event(j);
  if (include_usage) {
    json u = envelope(m, true);
    u["choices"] = json::array();
    u["usage"] = usage_json(o);
    out += event(u);
  }
  return out + "data: [DONE]\n\n";
}

std::string error_body(int status, std::string_view type, std::string_view message,
                       std::string_view param) {
  return dump_json({{"error",
                     {{"message", message},
                      {"type", type},
                      {"code", status},
                      {"param", param.empty() ? json(nullptr) : json(param)}}}});
}

std::string error_body(const RequestError& e) {
  return error_body(e.status(), e.type(), e.what(), e.param());
}

}  // namespace kvpack::serve
