#include "serve/request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace kvpack::serve {

using nlohmann::json;

RequestError::RequestError(int status, std::string type, std::string message, std::string param)
    : std::runtime_error(std::move(message)),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)) {}

void bad_field(std::string param, std::string message) {
  throw RequestError(400, "invalid_request_error", std::move(message), std::move(param));
}

namespace {

// The body as one JSON object; depth-limited so a deeply nested document cannot exhaust the
// stack.
json parse_object(std::string_view body) {
  constexpr int kMaxDepth = 64;
  bool too_deep = false;
  const json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json&) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      too_deep = too_deep || depth > kMaxDepth;
    }
    return !too_deep;
  };
  json j = json::parse(body, limit, /*allow_exceptions=*/false);
  if (too_deep) bad_field("", fmt::format("the body nests deeper than {} levels", kMaxDepth));
  if (j.is_discarded()) bad_field("", "the body is not valid JSON");
  if (!j.is_object()) bad_field("", "the body must be a JSON object");
  return j;
}

const char* type_name(const json& v) {
  return v.type_name();
}

// Typed readers: each names the field in its error. `v` is never null here.
bool get_bool(const json& v, const std::string& name) {
  if (!v.is_boolean())
    bad_field(name, fmt::format("'{}' must be a boolean, not {}", name, type_name(v)));
  return v.get<bool>();
}

double get_number(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number())
    bad_field(name, fmt::format("'{}' must be a number, not {}", name, type_name(v)));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    bad_field(name, fmt::format("'{}' must be within {}..{}, not {}", name, lo, hi, x));
  }
  return x;
}

int64_t get_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) {
      bad_field(name, fmt::format("'{}' must be within {}..{}, not {}", name, lo, hi, u));
    }
    return static_cast<int64_t>(u);
  }
  if (!v.is_number_integer()) {
    bad_field(name, fmt::format("'{}' must be an integer, not {}", name, type_name(v)));
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad_field(name, fmt::format("'{}' must be within {}..{}, not {}", name, lo, hi, x));
  return x;
}

std::string get_string(const json& v, const std::string& name) {
  if (!v.is_string())
    bad_field(name, fmt::format("'{}' must be a string, not {}", name, type_name(v)));
  return v.get<std::string>();
}

std::vector<int32_t> get_token_ids(const json& v, const std::string& name) {
  if (!v.is_array()) bad_field(name, fmt::format("'{}' must be an array of token ids", name));
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    ids.push_back(static_cast<int32_t>(
        get_int(v[i], fmt::format("{}[{}]", name, i), 0, std::numeric_limits<int32_t>::max())));
  }
  return ids;
}

// OpenAI's `stop`: a string or an array of strings.
std::vector<std::string> get_stop(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > kMaxStopStrings)
      bad_field("stop", fmt::format("'stop' takes at most {} strings", kMaxStopStrings));
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(get_string(v[i], fmt::format("stop[{}]", i)));
  } else {
    bad_field("stop",
              fmt::format("'stop' must be a string or an array of strings, not {}", type_name(v)));
  }
  for (const std::string& s : out) {
    if (s.size() > kMaxStopBytes)
      bad_field("stop", fmt::format("a stop string is longer than {} bytes", kMaxStopBytes));
  }
  return out;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string get_content(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array())
    bad_field(name, fmt::format("'{}' must be a string or an array of text parts", name));
  std::string text;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string part = fmt::format("{}[{}]", name, i);
    if (!v[i].is_object()) bad_field(part, fmt::format("'{}' must be an object", part));
    for (const auto& [key, value] : v[i].items()) {
      if (key == "type") {
        if (get_string(value, part + ".type") != "text") {
          bad_field(part + ".type",
                    fmt::format("'{}.type' must be \"text\" (only text is supported)", part));
        }
      } else if (key == "text") {
        text += get_string(value, part + ".text");
      } else {
        bad_field(part + "." + key, fmt::format("unknown field '{}.{}'", part, key));
      }
    }
  }
  return text;
}

std::vector<ChatMessage> get_messages(const json& v) {
  if (!v.is_array()) bad_field("messages", "'messages' must be an array of messages");
  if (v.empty()) bad_field("messages", "'messages' must hold at least one message");
  if (v.size() > kMaxMessages)
    bad_field("messages", fmt::format("'messages' holds more than {} messages", kMaxMessages));
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = fmt::format("messages[{}]", i);
    if (!v[i].is_object()) bad_field(at, fmt::format("'{}' must be an object", at));
    ChatMessage m;
    bool has_role = false;
    for (const auto& [key, value] : v[i].items()) {
      if (value.is_null()) continue;
      if (key == "role") {
        m.role = get_string(value, at + ".role");
        if (m.role == "developer") m.role = "system";
        if (m.role != "system" && m.role != "user" && m.role != "assistant") {
          bad_field(at + ".role", fmt::format("'{}.role' must be system, user or assistant", at));
        }
        has_role = true;
      } else if (key == "content") {
        m.content = get_content(value, at + ".content");
      } else if (key == "name") {
        get_string(value, at + ".name");
      } else {
        bad_field(at + "." + key, fmt::format("unknown or unsupported field '{}.{}'", at, key));
      }
    }
    if (!has_role) bad_field(at + ".role", fmt::format("'{}' has no role", at));
    out.push_back(std::move(m));
  }
  return out;
}

// Fields OpenAI defines that kvpack does not implement: accepted only at their neutral value.
void neutral_only(const std::string& key, const json& v) {
  const bool neutral =
      (v.is_number() && v.get<double>() == 0) || (v.is_boolean() && !v.get<bool>());
  if (!neutral) bad_field(key, fmt::format("'{}' is not supported", key));
}

void read_field(CompletionRequest& r, const std::string& key, const json& v) {
  const bool chat = r.endpoint == Endpoint::kChat;
  model::SamplerConfig& s = r.sampling;
  if (key == "model") {
    r.model = get_string(v, key);
  } else if (key == "prompt" && !chat) {
    if (v.is_string()) {
      r.prompt = v.get<std::string>();
    } else if (v.is_array() && v.size() == 1 && v[0].is_string()) {
      r.prompt = v[0].get<std::string>();
    } else if (v.is_array()) {
      r.prompt_ids = get_token_ids(v, key);
    } else {
      bad_field(key, "'prompt' must be a string or an array of token ids");
    }
  } else if (key == "messages" && chat) {
    r.messages = get_messages(v);
  } else if (key == "max_tokens" || (key == "max_completion_tokens" && chat) ||
             key == "n_predict") {
    r.max_tokens = static_cast<int>(get_int(v, key, key == "n_predict" ? -1 : 1, kMaxTokensLimit));
  } else if (key == "temperature") {
    s.temperature = static_cast<float>(get_number(v, key, 0, 100));
  } else if (key == "top_p") {
    s.top_p = static_cast<float>(get_number(v, key, 0, 1));
  } else if (key == "top_k") {
    s.top_k = static_cast<int>(get_int(v, key, 0, std::numeric_limits<int32_t>::max()));
  } else if (key == "min_p") {
    s.min_p = static_cast<float>(get_number(v, key, 0, 1));
  } else if (key == "repeat_penalty") {
    s.repeat_penalty = static_cast<float>(get_number(v, key, 1e-3, 1e3));
  } else if (key == "repeat_last_n") {
    s.repeat_last_n = static_cast<int>(get_int(v, key, -1, 1 << 20));
  } else if (key == "seed") {
    const int64_t seed = get_int(v, key, -1, std::numeric_limits<int64_t>::max());
    if (seed >= 0) r.seed = static_cast<uint64_t>(seed);  // -1: drawn, as llama.cpp
  } else if (key == "stop") {
    r.stop = get_stop(v);
  } else if (key == "n") {
    if (get_int(v, key, 1, 1 << 20) != 1) bad_field(key, "'n' must be 1 (one choice per request)");
  } else if (key == "stream") {
    r.stream = get_bool(v, key);
  } else if (key == "stream_options") {
    if (!v.is_object()) bad_field(key, "'stream_options' must be an object");
    for (const auto& [k, x] : v.items()) {
      if (k != "include_usage")
        bad_field(key + "." + k, fmt::format("unknown field 'stream_options.{}'", k));
      if (!x.is_null()) r.include_usage = get_bool(x, "stream_options.include_usage");
    }
  } else if (key == "cache_prompt") {
    r.cache_prompt = get_bool(v, key);
  } else if (key == "ignore_eos") {
    r.ignore_eos = get_bool(v, key);
  } else if (key == "kv") {
    r.kv = get_string(v, key);
  } else if (key == "user") {
    get_string(v, key);
  } else if (key == "presence_penalty" || key == "frequency_penalty" || key == "logprobs" ||
             key == "echo") {
    neutral_only(key, v);
  } else {
    bad_field(key, fmt::format("unknown or unsupported field '{}'", key));
  }
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint) {
  const json j = parse_object(body);
  CompletionRequest r;
  r.endpoint = endpoint;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;  // OpenAI: null is the default
    read_field(r, key, value);
  }
  if (endpoint == Endpoint::kChat && r.messages.empty())
    bad_field("messages", "'messages' is required");
  if (endpoint == Endpoint::kCompletions && !j.contains("prompt"))
    bad_field("prompt", "'prompt' is required");
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  const json j = parse_object(body);
  TokenizeRequest r;
  bool has_content = false;
  for (const auto& [key, v] : j.items()) {
    if (v.is_null()) continue;
    if (key == "content") {
      r.content = get_string(v, key);
      has_content = true;
    } else if (key == "add_special") {
      r.add_special = get_bool(v, key);
    } else if (key == "parse_special") {
      r.parse_special = get_bool(v, key);
    } else if (key == "with_pieces") {
      r.with_pieces = get_bool(v, key);
    } else {
      bad_field(key, fmt::format("unknown field '{}'", key));
    }
  }
  if (!has_content) bad_field("content", "'content' is required");
  return r;
}

DetokenizeRequest parse_detokenize_request(std::string_view body) {
  const json j = parse_object(body);
  DetokenizeRequest r;
  bool has_tokens = false;
  for (const auto& [key, v] : j.items()) {
    if (v.is_null()) continue;
    if (key == "tokens") {
      r.tokens = get_token_ids(v, key);
      has_tokens = true;
    } else {
      bad_field(key, fmt::format("unknown field '{}'", key));
    }
  }
  if (!has_tokens) bad_field("tokens", "'tokens' is required");
  return r;
}

}  // namespace kvpack::serve
