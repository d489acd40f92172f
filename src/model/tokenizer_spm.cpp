// SentencePiece-style BPE ("llama" vocabularies): spaces become U+2581, a dummy-prefix space
// starts each run of text, then adjacent symbols are merged greedily, highest-scoring merged
// token first (leftmost on ties), as long as the merged text is a token. Characters that end up
// in no token fall back to their UTF-8 bytes as <0xXX> tokens.
#include <algorithm>
#include <array>

#include "base/error.h"
#include "model/pair_merge.h"
#include "model/tokenizer.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
    build_pieces([](std::string_view text) {
      std::string piece;
      for (size_t at = 0;;) {
        const size_t hit = text.find(kEscapedSpace, at);
        piece.append(text.substr(at, hit - at));
        if (hit == std::string_view::npos) break;
        piece += ' ';
        at = hit + kEscapedSpace.size();
      }
      return piece;
    });
    for (int b = 0; b < 256; ++b) byte_tokens_[b] = vocab_.find(fmt::format("<0x{:02X}>", b));
  }

 protected:
  void encode_text(std::string_view raw, bool at_boundary,
                   std::vector<int32_t>& out) const override;

 private:
  void emit_unknown(std::string_view s, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_tokens_{};  // id of <0xXX> per byte, or kNoToken
};

// Byte fallback for a character no token covers: its bytes as <0xXX> tokens when the vocabulary
// has them (SentencePiece byte_fallback), else one unknown token for the whole character.
void SpmTokenizer::emit_unknown(std::string_view s, std::vector<int32_t>& out) const {
  const bool bytes = std::all_of(s.begin(), s.end(), [this](char c) {
    return byte_tokens_[static_cast<uint8_t>(c)] != kNoToken;
  });
  if (bytes) {
    for (const char c : s) out.push_back(byte_tokens_[static_cast<uint8_t>(c)]);
  } else {
    out.push_back(unknown_token(s));
  }
}

void SpmTokenizer::encode_text(std::string_view raw, bool at_boundary,
                               std::vector<int32_t>& out) const {
  std::string text;
  text.reserve(raw.size() + 16);
  if (at_boundary && vocab_.add_space_prefix) text += kEscapedSpace;
  for (const char c : raw) {
    if (c == ' ') {
      text += kEscapedSpace;
    } else {
      text += c;
    }
  }
  if (text.empty()) return;
  KVPACK_ASSERT(text.size() < (size_t{1} << 31), "text run of {} bytes", text.size());

  // symbols: (n_chars) one per UTF-8 character, or per byte that is not valid UTF-8. Adjacent
  // symbols merge when their text is a token, highest score first.
  std::vector<MergeSymbol> symbols;
  symbols.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const auto n = static_cast<uint32_t>(utf8_char_length(text, at));
    symbols.push_back({static_cast<uint32_t>(at), n,
                       vocab_.find_mergeable(std::string_view(text).substr(at, n))});
    at += n;
  }
  merge_pairs(symbols, [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<PairMerge> {
    const int32_t id =
        vocab_.find_mergeable(std::string_view(text).substr(l.start, l.length + r.length));
    if (id == kNoToken) return std::nullopt;
    return PairMerge{vocab_.score[id], id};
  });

  // Every merged symbol is a token by construction; a single character may not be.
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    if (symbols[i].id != kNoToken) {
      out.push_back(symbols[i].id);
    } else {
      emit_unknown(std::string_view(text).substr(symbols[i].start, symbols[i].length), out);
    }
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::make_unique<SpmTokenizer>(std::move(vocab));
}

}  // namespace kvpack::model
