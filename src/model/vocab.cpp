#include "model/vocab.h"

#include <algorithm>
#include <array>
#include <limits>

#include "base/error.h"
#include "model/gguf.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";

// Tokens llama.cpp recognises by their text when the GGUF does not name them, and what it makes
// of them: the EOT token (the first present of kEotTexts, when no key names it), the EOM token,
// the fill-in-the-middle tokens, and the tokens that end generation. Each of these is also
// promoted to a control token if the file says otherwise (llama.cpp warns "control-looking
// token ... will be overridden"), so its text is plain text unless special tokens are parsed.
// Notably "</s>" is one of them: a NORMAL token in Qwen3 and a USER_DEFINED HTML tag in Gemma 3
// become control tokens that end generation (../shared/models/vocab/README.md).
constexpr std::array<std::string_view, 10> kEotTexts = {
    "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>",      "_<EOT>",  "[EOT]",         "<end_of_utterance>"};
constexpr std::string_view kEomText = "<|eom_id|>";
// Fill-in-the-middle markers: prefix, suffix, middle (control only), then pad, repo and file
// separator (which also end generation). Per role, the first present one counts.
constexpr std::array<std::array<std::string_view, 6>, 6> kFimTexts = {{
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>", "<|prefix|>"},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>", "<|suffix|>"},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>", "<|middle|>"},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", ""},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", ""},
    {"<|file_sep|>", "", "", "", "", ""},
}};
constexpr size_t kFimEogFrom = 3;  // pad, repo and file separator end generation
constexpr std::array<std::string_view, 20> kEogTexts = {"<|eot_id|>",
                                                        "<|im_end|>",
                                                        "<|end|>",
                                                        "<|return|>",
                                                        "<|call|>",
                                                        "<|flush|>",
                                                        "<|calls|>",
                                                        "<end_of_turn>",
                                                        "<|endoftext|>",
                                                        "</s>",
                                                        "<|eom_id|>",
                                                        "<EOT>",
                                                        "_<EOT>",
                                                        "[EOT]",
                                                        "[EOS]",
                                                        "<|end_of_text|>",
                                                        "<end_of_utterance>",
                                                        "<eos>",
                                                        "<turn|>",
                                                        "<|tool_response>"};

struct PreTokenizerName {
  std::string_view name;
  PreTokenizer pre;
};
constexpr std::array<PreTokenizerName, 12> kPreTokenizers = {{
    {"default", PreTokenizer::gpt2},
    {"gpt-2", PreTokenizer::gpt2},
    {"phi-2", PreTokenizer::gpt2},
    {"roberta-bpe", PreTokenizer::gpt2},
    {"llama3", PreTokenizer::llama3},
    {"llama-v3", PreTokenizer::llama3},
    {"llama-bpe", PreTokenizer::llama3},
    {"falcon3", PreTokenizer::llama3},
    {"qwen2", PreTokenizer::qwen2},
    {"deepseek-r1-qwen", PreTokenizer::qwen2},
    {"megrez", PreTokenizer::qwen2},
    {"", PreTokenizer::gpt2},  // absent
}};

PreTokenizer parse_pre(const GgufFile& f) {
  const std::string pre = f.get_string(kPreKey).value_or("");
  for (const auto& p : kPreTokenizers) {
    if (p.name == pre) return p.pre;
  }
  std::string known;
  for (const auto& p : kPreTokenizers) {
    if (!p.name.empty()) known += fmt::format("{}{}", known.empty() ? "" : ", ", p.name);
  }
  fail("{}: {} is '{}', which kvpack does not support (supported: {})", f.path(), kPreKey, pre,
       known);
}

bool is_byte_token_text(std::string_view s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.substr(0, 3) == "<0x" && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

void read_scores(const GgufFile& f, Vocab& v) {
  const auto* scores = f.get_floats(kScoresKey);
  if (scores == nullptr) {
    if (v.model == TokenizerModel::spm) {
      fail("{}: {} is missing: a 'llama' (SentencePiece) tokenizer merges by score, one per token",
           f.path(), kScoresKey);
    }
    v.score.assign(v.text.size(), 0.0f);
    return;
  }
  if (scores->size() != v.text.size()) {
    fail("{}: {} has {} entries, expected {} (one per entry of {})", f.path(), kScoresKey,
         scores->size(), v.text.size(), kTokensKey);
  }
  v.score.assign(scores->begin(), scores->end());
}

void read_types(const GgufFile& f, Vocab& v) {
  const auto* types = f.get_ints(kTypesKey);
  if (types == nullptr) {
    v.type.assign(v.text.size(), TokenType::normal);
    return;
  }
  if (types->size() != v.text.size()) {
    fail("{}: {} has {} entries, expected {} (one per entry of {})", f.path(), kTypesKey,
         types->size(), v.text.size(), kTokensKey);
  }
  v.type.resize(types->size());
  for (size_t i = 0; i < types->size(); ++i) {
    const int64_t t = (*types)[i];
    if (t < 0 || t > static_cast<int64_t>(TokenType::byte)) {
      fail(
          "{}: {}[{}] is {}, expected 0..6 (undefined, normal, unknown, control, user-defined, "
          "unused, byte)",
          f.path(), kTypesKey, i, t);
    }
    v.type[i] = static_cast<TokenType>(t);
    if (v.type[i] == TokenType::byte && !is_byte_token_text(v.text[i])) {
      fail("{}: {}[{}] is {:?}, but {}[{}] marks it a byte token, which must read <0xXX>", f.path(),
           kTokensKey, i, v.text[i], kTypesKey, i);
    }
  }
}

// A special-token id from `key`: absent -> `fallback`; -1 / 0xFFFFFFFF -> none (how converters
// write "no such token"); anything else must index the vocabulary.
int32_t read_id(const GgufFile& f, std::string_view key, int32_t fallback, int32_t n) {
  const std::optional<int64_t> id = f.get_int(key);
  if (!id) return fallback < n ? fallback : kNoToken;
  if (*id == -1 || *id == std::numeric_limits<uint32_t>::max()) return kNoToken;
  if (*id < 0 || *id >= n) {
    fail("{}: {} is {}, but {} has only {} tokens", f.path(), key, *id, kTokensKey, n);
  }
  return static_cast<int32_t>(*id);
}

// add_bos/add_eos from the key when present; a rule that needs a token the file lacks is an error
// when the file asks for it and dropped when it is only the model type's default.
bool read_add_rule(const GgufFile& f, std::string_view key, bool fallback, int32_t token,
                   std::string_view token_key) {
  const std::optional<bool> value = f.get_bool(key);
  if (value && *value && token == kNoToken) {
    fail("{}: {} is true, but {} is missing", f.path(), key, token_key);
  }
  return value.value_or(fallback) && token != kNoToken;
}

// A token found by its text, promoted to a control token as llama.cpp does.
int32_t find_as_control(Vocab& v, std::string_view text) {
  const int32_t id = text.empty() ? kNoToken : v.find(text);
  if (id != kNoToken) v.type[id] = TokenType::control;
  return id;
}

// The ids that end generation: EOS, EOT, EOM, the listed texts and the FIM pad/repo/separator
// tokens (llama.cpp's set), plus tokenizer.ggml.eog_token_ids where a converter writes one.
void read_end_of_generation(const GgufFile& f, Vocab& v) {
  std::vector<int32_t>& eog = v.end_of_generation;
  for (size_t role = 0; role < kFimTexts.size(); ++role) {
    for (std::string_view t : kFimTexts[role]) {
      const int32_t id = find_as_control(v, t);
      if (id == kNoToken) continue;
      if (role >= kFimEogFrom) eog.push_back(id);
      break;
    }
  }
  for (std::string_view t : kEogTexts) {
    if (const int32_t id = find_as_control(v, t); id != kNoToken) eog.push_back(id);
  }
  for (int32_t id : {v.eos, v.eot, v.eom}) {
    if (id != kNoToken) eog.push_back(id);
  }
  // llama.cpp's exceptions, applied after the above as it does: in vocabularies with
  // "<|tool_response>" (Gemma 4), "</s>" is text; with "<|return|>" and "<|call|>" (gpt-oss), or
  // "<|calls|>" and "<|flush|>", "<|end|>" does not end generation.
  const auto has = [&](std::string_view t) { return v.find(t) != kNoToken; };
  const auto demote = [&](std::string_view t, TokenType type) {
    const int32_t id = v.find(t);
    if (id == kNoToken) return;
    eog.erase(std::remove(eog.begin(), eog.end(), id), eog.end());
    v.type[id] = type;
  };
  if (has("<|tool_response>")) demote("</s>", TokenType::normal);
  if ((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>"))) {
    demote("<|end|>", TokenType::user_defined);
  }
  if (const auto* ids = f.get_ints("tokenizer.ggml.eog_token_ids")) {
    for (size_t i = 0; i < ids->size(); ++i) {
      const int64_t id = (*ids)[i];
      if (id < 0 || id >= v.size()) {
        fail("{}: tokenizer.ggml.eog_token_ids[{}] is {}, but {} has only {} tokens", f.path(), i,
             id, kTokensKey, v.size());
      }
      eog.push_back(static_cast<int32_t>(id));
    }
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

void read_specials(const GgufFile& f, Vocab& v) {
  const int32_t n = v.size();
  const bool spm = v.model == TokenizerModel::spm;
  // llama.cpp's defaults for SentencePiece files written before these keys existed.
  v.bos = read_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : kNoToken, n);
  v.eos = read_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : kNoToken, n);
  v.unk = read_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : kNoToken, n);
  v.pad = read_id(f, "tokenizer.ggml.padding_token_id", kNoToken, n);
  v.eot = read_id(f, "tokenizer.ggml.eot_token_id", kNoToken, n);
  v.eom = read_id(f, "tokenizer.ggml.eom_token_id", kNoToken, n);
  if (v.eot == kNoToken) {
    for (std::string_view t : kEotTexts) {
      if ((v.eot = find_as_control(v, t)) != kNoToken) break;
    }
  }
  if (v.eom == kNoToken) v.eom = find_as_control(v, kEomText);

  const bool bos_default = spm || v.pre == PreTokenizer::llama3;
  v.add_bos = read_add_rule(f, "tokenizer.ggml.add_bos_token", bos_default, v.bos,
                            "tokenizer.ggml.bos_token_id");
  v.add_eos =
      read_add_rule(f, "tokenizer.ggml.add_eos_token", false, v.eos, "tokenizer.ggml.eos_token_id");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  v.ignore_merges = v.pre == PreTokenizer::llama3;
  v.clean_spaces = !spm && v.pre != PreTokenizer::qwen2;
  read_end_of_generation(f, v);
}

}  // namespace

std::string_view pre_tokenizer_name(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::none:
      return "none";
    case PreTokenizer::gpt2:
      return "gpt-2";
    case PreTokenizer::llama3:
      return "llama3";
    case PreTokenizer::qwen2:
      return "qwen2";
  }
  return "?";
}

int32_t Vocab::find(std::string_view s) const {
  const auto it = ids_.find(s);
  return it == ids_.end() ? kNoToken : it->second;
}

int32_t Vocab::find_mergeable(std::string_view s) const {
  const int32_t id = find(s);
  if (id == kNoToken) return kNoToken;
  switch (type[id]) {
    case TokenType::control:
    case TokenType::unknown:
    case TokenType::byte:
      return kNoToken;
    default:
      return id;
  }
}

void Vocab::index_texts() {
  ids_.reserve(text.size());
  for (int32_t id = 0; id < size(); ++id) {
    if (text[id].empty()) continue;  // unreachable by text; still decodable (to nothing)
    const auto [it, inserted] = ids_.emplace(text[id], id);
    if (!inserted) {
      fail("{}: {}[{}] is {:?}, the same text as {}[{}]; token texts must be unique", source,
           kTokensKey, id, text[id], kTokensKey, it->second);
    }
  }
}

std::optional<Vocab> Vocab::from_gguf(const GgufFile& f) {
  const std::optional<std::string> model = f.get_string(kModelKey);
  if (!model || *model == "none" || *model == "no_vocab") return std::nullopt;

  Vocab v;
  v.source = f.path();
  if (*model == "llama") {
    v.model = TokenizerModel::spm;
  } else if (*model == "gpt2") {
    v.model = TokenizerModel::bpe;
    v.pre = parse_pre(f);
  } else {
    fail(
        "{}: {} is '{}', which kvpack does not support (supported: llama (SentencePiece), gpt2 "
        "(byte-level BPE), none)",
        f.path(), kModelKey, *model);
  }

  const auto* tokens = f.get_strings(kTokensKey);
  if (tokens == nullptr) {
    fail("{}: {} is missing: a '{}' tokenizer needs its token list", f.path(), kTokensKey, *model);
  }
  if (tokens->empty()) fail("{}: {} is empty", f.path(), kTokensKey);
  if (tokens->size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail("{}: {} has {} tokens, more than token ids can address", f.path(), kTokensKey,
         tokens->size());
  }
  v.text = *tokens;
  read_scores(f, v);
  read_types(f, v);
  v.index_texts();
  read_specials(f, v);
  return v;
}

}  // namespace kvpack::model
