// The prompt text of a chat conversation for one model (src/serve). Until the tokenizer's chat
// template support lands (src/model/chat_template.*, issue `tok`), this renders the template
// families that GGUF files name in tokenizer.chat_template -- ChatML, Llama 3, Llama 2 /
// Mistral [INST], Gemma -- recognised by their markers, and a plain "User:/Assistant:" layout
// for models without a template (the probe model). BOS is not rendered: tokenization adds it
// where the vocabulary asks for it, as `kvpack run` does.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "serve/request.h"

namespace kvpack::model {
class GgufFile;
}

namespace kvpack::serve {

enum class ChatFormat { kPlain, kChatML, kLlama3, kLlama2, kGemma };

// The format a GGUF's tokenizer.chat_template asks for (kPlain when it has none or it is not
// recognised).
ChatFormat chat_format_of(const model::GgufFile& file);
std::string_view chat_format_name(ChatFormat format);

// The conversation, ending where the assistant's reply begins.
std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages);

}  // namespace kvpack::serve
