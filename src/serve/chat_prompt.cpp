#include "serve/chat_prompt.h"

#include "base/error.h"
#include "kvpack/model.h"

namespace kvpack::serve {

ChatPrompt ChatPrompt::for_model(const model::Model& model) {
  ChatPrompt p;
  if (model.tokenizer() == nullptr) return p;
  try {
    p.format_ = model::ChatFormat::from_gguf(model.file(), *model.tokenizer());
  } catch (const Error&) {
    // Neither a template nor a built-in format: the plain layout.
  }
  return p;
}

std::string ChatPrompt::name() const {
  return format_ ? format_->description() : "plain";
}

std::string render_plain_chat(std::span<const ChatMessage> messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else {
      out += (m.role == "user" ? "User: " : "Assistant: ") + m.content + "\n";
    }
  }
  return out + "Assistant:";
}

std::vector<int32_t> ChatPrompt::tokens(const model::Tokenizer& tok,
                                        std::span<const ChatMessage> messages) const {
  if (!format_) return tok.encode(render_plain_chat(messages), /*add_special=*/true, true);
  std::vector<model::ChatMessage> m;
  for (const ChatMessage& x : messages) m.push_back({x.role, x.content});
  const std::string text = format_->render(m, /*add_generation_prompt=*/true);
  std::string_view rest = text;
  std::vector<int32_t> ids;
  if (tok.add_bos() && tok.bos() != model::kNoToken) {
    ids.push_back(tok.bos());
    const std::string& bos = tok.vocab().text[static_cast<size_t>(tok.bos())];
    if (rest.starts_with(bos)) rest.remove_prefix(bos.size());
  }
  const std::vector<int32_t> body = tok.encode(rest, /*add_special=*/false, /*parse_special=*/true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace kvpack::serve
