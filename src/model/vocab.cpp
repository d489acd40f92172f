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

// Texts that end generation in chat and instruct models whose GGUF does not list them, the same
// set llama.cpp recognises; the first present one is also the EOT token when no key names it.
constexpr std::array<std::string_view, 6> kEotTexts = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                                                       "<end_of_turn>", "<|endoftext|>", "<EOT>"};
constexpr std::string_view kEomText = "<|eom_id|>";

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
      if ((v.eot = v.find(t)) != kNoToken) break;
    }
  }
  if (v.eom == kNoToken) v.eom = v.find(kEomText);

  const bool bos_default = spm || v.pre == PreTokenizer::llama3;
  v.add_bos = read_add_rule(f, "tokenizer.ggml.add_bos_token", bos_default, v.bos,
                            "tokenizer.ggml.bos_token_id");
  v.add_eos =
      read_add_rule(f, "tokenizer.ggml.add_eos_token", false, v.eos, "tokenizer.ggml.eos_token_id");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  v.ignore_merges = v.pre == PreTokenizer::llama3;

  std::vector<int32_t>& eog = v.end_of_generation;
  for (int32_t id : {v.eos, v.eot, v.eom}) {
    if (id != kNoToken) eog.push_back(id);
  }
  for (std::string_view t : kEotTexts) {
    if (const int32_t id = v.find(t); id != kNoToken) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
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
