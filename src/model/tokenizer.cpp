#include "model/tokenizer.h"

#include <algorithm>

#include "base/error.h"
#include "model/gguf.h"
#include "model/utf8.h"

namespace kvpack::model {

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  std::optional<Vocab> vocab = Vocab::from_gguf(file);
  if (!vocab) return nullptr;
  if (vocab->model == TokenizerModel::spm) return make_spm_tokenizer(std::move(*vocab));
  return make_bpe_tokenizer(std::move(*vocab), file);
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    if (is_special(id) && !vocab_.text[id].empty()) specials_.push_back(id);
  }
  // Longer texts take precedence, as in llama.cpp; ties keep id order so the result is stable.
  std::stable_sort(specials_.begin(), specials_.end(), [this](int32_t a, int32_t b) {
    return vocab_.text[a].size() > vocab_.text[b].size();
  });
}

Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::unknown_token(std::string_view text) const {
  if (vocab_.unk == kNoToken) {
    fail("{}: cannot encode {:?}: no token covers it and the vocabulary has no unknown token",
         vocab_.source, std::string(text));
  }
  return vocab_.unk;
}

bool Tokenizer::is_special(int32_t id) const {
  if (!vocab_.valid(id)) return false;
  const TokenType t = vocab_.type[id];
  return t == TokenType::control || t == TokenType::unknown || t == TokenType::user_defined;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(vocab_.end_of_generation.begin(), vocab_.end_of_generation.end(), id);
}

// Splits the text at occurrences of special tokens, longest token first over the whole text
// (llama.cpp's order). Control and unknown tokens count only with parse_special; user-defined
// tokens always do (as in Hugging Face tokenizers, where added tokens are split out first).
std::vector<Tokenizer::Fragment> Tokenizer::split_specials(std::string_view text,
                                                           bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({text, kNoToken});
  std::vector<Fragment> next;
  for (const int32_t id : specials_) {
    if (!parse_special && vocab_.type[id] != TokenType::user_defined) continue;
    const std::string& special = vocab_.text[id];
    if (text.find(special) == std::string_view::npos) continue;  // cheap common case
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (size_t at; (at = rest.find(special)) != std::string_view::npos;) {
        if (at > 0) next.push_back({rest.substr(0, at), kNoToken});
        next.push_back({{}, id});
        rest.remove_prefix(at + special.size());
      }
      if (!rest.empty()) next.push_back({rest, kNoToken});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
  bool at_boundary = true;
  for (const Fragment& f : split_specials(text, parse_special)) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      at_boundary = true;
    } else {
      encode_text(f.text, at_boundary, out);
      at_boundary = false;
    }
  }
  if (add_special && vocab_.add_eos) out.push_back(vocab_.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (!vocab_.valid(id)) fail("token id {} is out of range [0, {})", id, n_vocab());
  const TokenType t = vocab_.type[id];
  if (!render_special && (t == TokenType::control || t == TokenType::unknown)) return {};
  return pieces_[id];
}

void Tokenizer::append_piece(int32_t id, const DecodeOptions& options, bool& at_boundary,
                             std::string& out) const {
  if (!vocab_.valid(id)) fail("token id {} is out of range [0, {})", id, n_vocab());
  const std::string& piece = pieces_[id];
  switch (vocab_.type[id]) {
    case TokenType::control:
    case TokenType::unknown:
      if (options.render_special) out += piece;
      at_boundary = true;
      return;
    case TokenType::user_defined:
      out += piece;
      at_boundary = true;
      return;
    case TokenType::byte:
      out += piece;
      at_boundary = false;
      return;
    default: {
      // The dummy prefix always starts a normal token, since U+2581 is a token of its own.
      const bool strip = at_boundary && options.strip_prefix_space && vocab_.add_space_prefix &&
                         vocab_.model == TokenizerModel::spm && !piece.empty() && piece[0] == ' ';
      out.append(piece, strip ? 1 : 0);
      at_boundary = false;
      return;
    }
  }
}

namespace {

// llama.cpp's three clean-up passes over the decoded bytes, each in place. A pass reads the
// byte before the current one as it was before the pass (writes never run ahead of reads).
void clean_up_spaces(std::string& s) {
  if (s.empty()) return;
  // 1: a space before ? ! . , goes.
  size_t n = 1;
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (s[i - 1] == ' ' && (c == '?' || c == '!' || c == '.' || c == ',')) --n;
    s[n++] = c;
  }
  s.resize(n);
  // 2: " ' " becomes "'": the space before goes, and the one after is skipped (and no longer
  // counts as a space for the next byte).
  n = 1;
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\'' && i + 1 < s.size() && s[i - 1] == ' ' && s[i + 1] == ' ') {
      --n;
      s[++i] = '\0';
    }
    s[n++] = c;
  }
  s.resize(n);
  // 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
  n = 1;
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (s[i - 1] == ' ' && c == '\'' && i + 1 < s.size()) {
      const char c1 = s[i + 1];
      const char c2 = i + 2 < s.size() ? s[i + 2] : '\0';
      if (c1 == 's' || c1 == 'm' || ((c1 == 'r' || c1 == 'v') && c2 == 'e')) --n;
    }
    s[n++] = c;
  }
  s.resize(n);
}

}  // namespace

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  bool at_boundary = true;
  for (const int32_t id : ids) append_piece(id, options, at_boundary, out);
  if (options.clean_up_spaces && vocab_.clean_spaces) clean_up_spaces(out);
  return out;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamDecoder::push(int32_t id) {
  tokenizer_->append_piece(id, options_, at_boundary_, held_);
  const size_t ready = held_.size() - utf8_incomplete_tail(held_);
  std::string out = held_.substr(0, ready);
  held_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(held_);
  at_boundary_ = true;
  return out;
}

}  // namespace kvpack::model
