// SentencePiece-style BPE ("llama" vocabularies): spaces become U+2581, a dummy-prefix space
// starts each run of text, then adjacent symbols are merged greedily, highest-scoring merged
// token first (leftmost on ties), as long as the merged text is a token. Characters that end up
// in no token fall back to their UTF-8 bytes as <0xXX> tokens.
#include <algorithm>
#include <array>
#include <queue>

#include "base/error.h"
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
  // One symbol of the text being merged: text_[start, start + length), linked to its neighbours.
  struct Symbol {
    uint32_t start;
    uint32_t length;  // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;  // -1 at either end
  };
  struct Bigram {
    int32_t left;
    int32_t right;
    float score;
    uint32_t length;  // left + right length when queued; stale when the symbols changed since
    // Priority: higher score first, then the leftmost pair.
    bool operator<(const Bigram& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };

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
  } else if (vocab_.unk != kNoToken) {
    out.push_back(vocab_.unk);
  } else {
    fail(
        "{}: cannot encode {:?}: no token covers it and the vocabulary has neither byte tokens "
        "nor an unknown token",
        vocab_.source, std::string(s));
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

  // symbols: (n_chars) one per UTF-8 character, or per byte that is not valid UTF-8.
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const auto n = static_cast<uint32_t>(utf8_char_length(text, at));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(at), n, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
    at += n;
  }

  std::priority_queue<Bigram> queue;
  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t length = symbols[left].length + symbols[right].length;
    const int32_t id =
        vocab_.find_mergeable(std::string_view(text).substr(symbols[left].start, length));
    if (id != kNoToken) queue.push({left, right, vocab_.score[id], length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side was merged away, or grew, after this pair was queued.
    if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }

  // Every merged symbol is a token by construction; a single character may not be.
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view s = std::string_view(text).substr(symbols[i].start, symbols[i].length);
    const int32_t id = vocab_.find_mergeable(s);
    if (id != kNoToken) {
      out.push_back(id);
    } else {
      emit_unknown(s, out);
    }
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::make_unique<SpmTokenizer>(std::move(vocab));
}

}  // namespace kvpack::model
