// The prompt of a chat conversation for one model (src/serve): the model's chat format
// (model::ChatFormat: the GGUF's template, else the architecture's built-in one), or, for a
// model that has neither (the probe model), a plain "User:/Assistant:" layout.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/chat.h"
#include "serve/request.h"

namespace kvpack::model {
class Model;
}

namespace kvpack::serve {

class ChatPrompt {
 public:
  // The model's format; the plain layout when it has none (or no tokenizer).
  static ChatPrompt for_model(const model::Model& model);
  // The conversation's token ids, ending where the assistant's reply begins: BOS where the
  // vocabulary adds it (once, even when the template writes it), then the rendered text with
  // special-token text parsed. Throws Error when the template fails (e.g. a role it rejects).
  std::vector<int32_t> tokens(const model::Tokenizer& tok,
                              std::span<const ChatMessage> messages) const;
  // "plain", or the format's description ("the GGUF's chat template", "chatml (built-in)", ...).
  std::string name() const;

 private:
  std::optional<model::ChatFormat> format_;
};

// The plain layout: "SYSTEM\n\nUser: ...\nAssistant: ...\nAssistant:".
std::string render_plain_chat(std::span<const ChatMessage> messages);

}  // namespace kvpack::serve
