#include "model/chat.h"

#include <algorithm>

#include "base/error.h"
#include "model/chat_template_ast.h"
#include "model/gguf.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kTemplateKey = "tokenizer.chat_template";

bool starts_with(std::string_view s, std::string_view prefix) {
  return !prefix.empty() && s.substr(0, prefix.size()) == prefix;
}

std::string token_text(const Tokenizer& tok, int32_t id) {
  return tok.vocab().valid(id) ? tok.vocab().text[id] : std::string();
}

std::string_view builtin_name(BuiltinChat kind) {
  switch (kind) {
    case BuiltinChat::chatml:
      return "chatml";
    case BuiltinChat::llama3:
      return "llama3";
    case BuiltinChat::gemma:
      return "gemma";
  }
  return "?";
}

// The built-in format for this architecture and vocabulary, if the vocabulary has its markers.
std::optional<BuiltinChat> pick_builtin(std::string_view arch, const Tokenizer& tok) {
  const auto has = [&](std::string_view t) { return tok.vocab().find(t) != kNoToken; };
  const bool chatml = has("<|im_start|>") && has("<|im_end|>");
  const bool gemma = has("<start_of_turn>") && has("<end_of_turn>");
  const bool llama3 = has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>");
  if (arch.substr(0, 4) == "qwen" && chatml) return BuiltinChat::chatml;
  if (arch.substr(0, 5) == "gemma" && gemma) return BuiltinChat::gemma;
  if (arch == "llama" && llama3) return BuiltinChat::llama3;
  if (chatml) return BuiltinChat::chatml;
  if (llama3) return BuiltinChat::llama3;
  if (gemma) return BuiltinChat::gemma;
  return std::nullopt;
}

size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + n, b.begin()).first - a.begin());
}

}  // namespace

ChatFormat ChatFormat::from_template(std::string_view source, const Tokenizer& tok) {
  ChatFormat f;
  f.template_.emplace(ChatTemplate::parse(source));
  f.bos_text_ = token_text(tok, tok.bos());
  f.eos_text_ = token_text(tok, tok.eos());
  f.description_ = "the chat template";
  return f;
}

ChatFormat ChatFormat::builtin(BuiltinChat kind, const Tokenizer& tok) {
  ChatFormat f;
  f.builtin_ = kind;
  f.bos_text_ = token_text(tok, tok.bos());
  f.eos_text_ = token_text(tok, tok.eos());
  f.description_ = fmt::format("kvpack's built-in {} format", builtin_name(kind));
  return f;
}

ChatFormat ChatFormat::from_gguf(const GgufFile& file, const Tokenizer& tok, std::string* warning) {
  const std::optional<std::string> source = file.get_string(kTemplateKey);
  std::string why = fmt::format("{}: has no {}", file.path(), kTemplateKey);
  if (source) {
    try {
      ChatFormat f = from_template(*source, tok);
      f.description_ = "the GGUF's chat template";
      return f;
    } catch (const Error& e) {
      why = fmt::format("{}: {} is outside kvpack's Jinja subset: {}", file.path(), kTemplateKey,
                        e.what());
    }
  }
  const std::string arch = file.get_string("general.architecture").value_or("");
  const std::optional<BuiltinChat> kind = pick_builtin(arch, tok);
  if (!kind) {
    fail(
        "{}, and kvpack has no built-in chat format for architecture '{}' with this vocabulary "
        "(it needs <|im_start|>, <|start_header_id|> or <start_of_turn> tokens)",
        why, arch);
  }
  if (warning != nullptr) {
    *warning = fmt::format("{}; using kvpack's built-in {} format", why, builtin_name(*kind));
  }
  return builtin(*kind, tok);
}

std::string ChatFormat::render(std::span<const ChatMessage> messages,
                               bool add_generation_prompt) const {
  if (!template_) return render_builtin(messages, add_generation_prompt);
  jinja::List list;
  for (const ChatMessage& m : messages) {
    list.push_back(
        jinja::Value::dict({{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}}));
  }
  const jinja::Value context = jinja::Value::dict({
      {"messages", jinja::Value(std::move(list))},
      {"add_generation_prompt", jinja::Value(add_generation_prompt)},
      {"bos_token", jinja::Value(bos_text_)},
      {"eos_token", jinja::Value(eos_text_)},
  });
  try {
    return template_->render(context);
  } catch (const Error& e) {
    fail("chat template: {}", e.what());
  }
}

std::string ChatFormat::render_builtin(std::span<const ChatMessage> messages,
                                       bool add_generation) const {
  const auto trim = [](const std::string& s) { return python_strip(s, true, true, {}); };
  std::string out;
  switch (builtin_) {
    case BuiltinChat::chatml:
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation) out += "<|im_start|>assistant\n";
      return out;
    case BuiltinChat::llama3:
      out = bos_text_;
      for (const ChatMessage& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) +
               "<|eot_id|>";
      }
      if (add_generation) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case BuiltinChat::gemma: {
      // Gemma has no system role: its text leads the first user turn.
      out = bos_text_;
      std::string prefix;
      bool first = true;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          prefix += trim(m.content) + "\n\n";
          continue;
        }
        const std::string role = m.role == "assistant" ? "model" : m.role;
        out += "<start_of_turn>" + role + "\n" + (first ? prefix : "") + trim(m.content) +
               "<end_of_turn>\n";
        first = false;
      }
      if (add_generation) out += "<start_of_turn>model\n";
      return out;
    }
  }
  return out;
}

Conversation::Conversation(const ChatFormat& format, const Tokenizer& tok,
                           std::string system_prompt)
    : format_(&format), tok_(&tok) {
  if (!system_prompt.empty()) messages_.push_back({"system", std::move(system_prompt)});
}

// A whole rendered conversation as tokens: BOS where the vocabulary adds one (a template that
// writes the BOS text itself does not get a second, as in llama.cpp), special-token text parsed.
std::vector<int32_t> Conversation::tokenize_full(const std::string& text) const {
  std::vector<int32_t> ids;
  std::string_view rest = text;
  if (tok_->add_bos()) {
    ids.push_back(tok_->bos());
    const std::string& bos = tok_->vocab().text[tok_->bos()];
    if (starts_with(rest, bos)) rest.remove_prefix(bos.size());
  }
  const std::vector<int32_t> body = tok_->encode(rest, /*add_special=*/false, true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

ChatTurn Conversation::add_user(std::string text) {
  std::vector<ChatMessage> next = messages_;
  next.push_back({"user", std::move(text)});
  const std::string rendered = format_->render(next, /*add_generation_prompt=*/true);
  ChatTurn turn;
  std::vector<int32_t> ids;
  if (!ids_.empty() && rendered.size() > text_.size() && starts_with(rendered, text_)) {
    // The earlier turns render as they are cached: only the new text is tokenized.
    turn.keep = ids_.size();
    turn.tokens = tok_->encode(std::string_view(rendered).substr(text_.size()), false, true);
    ids = ids_;
    ids.insert(ids.end(), turn.tokens.begin(), turn.tokens.end());
  } else {
    ids = tokenize_full(rendered);
    turn.keep = common_prefix(ids_, ids);
    if (turn.keep == ids.size() && turn.keep > 0) --turn.keep;  // logits need one token
    turn.tokens.assign(ids.begin() + static_cast<std::ptrdiff_t>(turn.keep), ids.end());
  }
  if (turn.tokens.empty()) fail("chat template: the conversation renders to no tokens");
  messages_ = std::move(next);
  ids_ = std::move(ids);
  text_ = rendered;
  reply_.clear();
  return turn;
}

void Conversation::add_generated(int32_t id) {
  ids_.push_back(id);
  reply_.push_back(id);
}

std::string Conversation::end_reply() {
  std::string shown = tok_->decode(reply_, chat_output_options());
  text_ += tok_->decode(reply_, {.render_special = true, .strip_prefix_space = false});
  messages_.push_back({"assistant", shown});
  reply_.clear();
  return shown;
}

}  // namespace kvpack::model
