// libFuzzer target: parses arbitrary bytes as a chat template and renders what parses with a few
// conversations. Nothing may crash, hang or grow without bound (the renderer's limits), every
// failure must be a kvpack::Error, and rendering must be deterministic. Seeds in
// fuzz/corpus/chat_template; tokens for mutations in fuzz/chat_template.dict.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "model/chat_template.h"

namespace {

using kvpack::model::ChatTemplate;
using kvpack::model::jinja::Dict;
using kvpack::model::jinja::List;
using kvpack::model::jinja::Value;

Value message(const char* role, Value content) {
  return Value::dict({{"role", Value(role)}, {"content", std::move(content)}});
}

// Conversations of the shapes chat templates branch on: system or not, several turns, a reply
// with reasoning, list content, tool calls and tools.
const std::vector<Value>& contexts() {
  static const std::vector<Value> all = [] {
    const Value tool = Value::dict(
        {{"type", Value("function")},
         {"function",
          Value::dict({{"name", Value("add")}, {"parameters", Value::dict({{"a", Value(1)}})}})}});
    Value call = message("assistant", Value(""));
    call.set("tool_calls", Value(List{tool}));
    const List turns = {
        message("system", Value("Be brief.")),
        message("user", Value("Hi \xC3\xA9")),
        message("assistant", Value("<think>\nx\n</think>\n\nHello")),
        message("user",
                Value(List{Value::dict({{"type", Value("text")}, {"text", Value(" parts ")}})})),
        call,
        message("tool", Value("2"))};
    std::vector<Value> out;
    for (size_t n : {size_t{0}, size_t{2}, turns.size()}) {
      for (bool gen : {false, true}) {
        Value ctx = Value::dict({{"messages", Value(List(turns.begin(), turns.begin() + n))},
                                 {"add_generation_prompt", Value(gen)},
                                 {"bos_token", Value("<s>")},
                                 {"eos_token", Value("</s>")}});
        if (n == turns.size()) ctx.set("tools", Value(List{tool}));
        out.push_back(std::move(ctx));
      }
    }
    return out;
  }();
  return all;
}

std::optional<std::string> render(const ChatTemplate& t, const Value& ctx) {
  try {
    return t.render(ctx);
  } catch (const kvpack::Error&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  std::optional<ChatTemplate> t;
  try {
    t.emplace(ChatTemplate::parse(source));
  } catch (const kvpack::Error&) {
    return 0;  // outside the subset or malformed: refused with a message, as it should be
  }
  // strftime_now reads the clock, so two renders may differ by a second.
  const bool clock = source.find("strftime_now") != std::string_view::npos;
  for (const Value& ctx : contexts()) {
    const std::optional<std::string> a = render(*t, ctx);
    if (clock) continue;
    KVPACK_ASSERT(render(*t, ctx) == a, "rendering is not deterministic");
  }
  return 0;
}
