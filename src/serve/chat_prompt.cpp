#include "serve/chat_prompt.h"

#include "model/gguf.h"

namespace kvpack::serve {

ChatFormat chat_format_of(const model::GgufFile& file) {
  const std::optional<std::string> t = file.get_string("tokenizer.chat_template");
  if (!t) return ChatFormat::kPlain;
  const auto has = [&](std::string_view s) { return t->find(s) != std::string::npos; };
  if (has("<|im_start|>")) return ChatFormat::kChatML;
  if (has("<|start_header_id|>")) return ChatFormat::kLlama3;
  if (has("<start_of_turn>")) return ChatFormat::kGemma;
  if (has("[INST]")) return ChatFormat::kLlama2;
  return ChatFormat::kPlain;
}

std::string_view chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatML:
      return "chatml";
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kLlama2:
      return "llama2";
    case ChatFormat::kGemma:
      return "gemma";
    case ChatFormat::kPlain:
      break;
  }
  return "plain";
}

namespace {

std::string render_plain(std::span<const ChatMessage> messages) {
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

std::string render_chatml(std::span<const ChatMessage> messages) {
  std::string out;
  for (const ChatMessage& m : messages)
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  return out + "<|im_start|>assistant\n";
}

std::string render_llama3(std::span<const ChatMessage> messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
  }
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// [INST] blocks; a system message goes in front of the first user message.
std::string render_llama2(std::span<const ChatMessage> messages) {
  std::string out, system;
  bool first = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += m.content;
    } else if (m.role == "user") {
      std::string text = m.content;
      if (!system.empty()) text = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + text;
      system.clear();
      out += (first ? "" : "<s>") + std::string("[INST] ") + text + " [/INST]";
      first = false;
    } else {
      out += " " + m.content + "</s>";
    }
  }
  return out;
}

// Gemma has no system role: it is prepended to the first user turn.
std::string render_gemma(std::span<const ChatMessage> messages) {
  std::string out, system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += m.content + "\n\n";
      continue;
    }
    const bool user = m.role == "user";
    out += "<start_of_turn>" + std::string(user ? "user" : "model") + "\n" + (user ? system : "") +
           m.content + "<end_of_turn>\n";
    if (user) system.clear();
  }
  return out + "<start_of_turn>model\n";
}

}  // namespace

std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages) {
  switch (format) {
    case ChatFormat::kChatML:
      return render_chatml(messages);
    case ChatFormat::kLlama3:
      return render_llama3(messages);
    case ChatFormat::kLlama2:
      return render_llama2(messages);
    case ChatFormat::kGemma:
      return render_gemma(messages);
    case ChatFormat::kPlain:
      break;
  }
  return render_plain(messages);
}

}  // namespace kvpack::serve
