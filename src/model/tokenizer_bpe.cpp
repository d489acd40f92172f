// GPT-2 byte-level BPE ("gpt2" vocabularies): the pre-tokenizer splits the text into words; each
// byte of a word becomes one printable character (GPT-2's byte-to-unicode table, so token texts
// never contain raw spaces or control bytes); then the pair with the lowest merge rank
// (tokenizer.ggml.merges order, leftmost on ties) is merged until no listed pair is left.
#include <array>
#include <unordered_map>

#include "base/error.h"
#include "model/gguf.h"
#include "model/pair_merge.h"
#include "model/pretokenize.h"
#include "model/tokenizer.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves; the other 68
// bytes (controls, space, DEL, NBSP, soft hyphen ...) map to U+0100 onwards in byte order.
struct ByteLevelTable {
  std::array<std::string, 256> byte_char;   // UTF-8 of the character each byte maps to
  std::array<int16_t, 256 + 68> char_byte;  // inverse over code points 0..323; -1 elsewhere

  ByteLevelTable() {
    char_byte.fill(-1);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int cp = printable ? b : 256 + shifted++;
      utf8_append(byte_char[b], static_cast<uint32_t>(cp));
      char_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTable& byte_level() {
  static const ByteLevelTable table;
  return table;
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(Vocab vocab, const GgufFile& file) : Tokenizer(std::move(vocab)) {
    const ByteLevelTable& table = byte_level();
    build_pieces([&table](std::string_view text) {
      std::string piece;
      for (size_t at = 0; at < text.size();) {
        const size_t n = utf8_char_length(text, at);
        const int32_t cp = utf8_code_point(text, at);
        if (cp >= 0 && cp < static_cast<int32_t>(table.char_byte.size()) &&
            table.char_byte[cp] >= 0) {
          piece += static_cast<char>(table.char_byte[cp]);
        } else {
          piece.append(text.substr(at, n));  // not a byte-level character: keep it as it is
        }
        at += n;
      }
      return piece;
    });
    for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find_mergeable(table.byte_char[b]);
    read_merges(file);
  }

 protected:
  void encode_text(std::string_view text, bool at_boundary,
                   std::vector<int32_t>& out) const override;

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void read_merges(const GgufFile& file);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_{};         // token of each byte's character, or kNoToken
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and result
};

void BpeTokenizer::read_merges(const GgufFile& file) {
  const auto* merges = file.get_strings(kMergesKey);
  if (merges == nullptr) {
    fail("{}: {} is missing: a 'gpt2' (byte-level BPE) tokenizer needs its merge list", file.path(),
         kMergesKey);
  }
  merges_.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string& m = (*merges)[i];
    const size_t space = m.find(' ', 1);  // from 1: a merge's left side may itself be " "
    if (space == std::string::npos || space + 1 >= m.size()) {
      fail("{}: {}[{}] is {:?}, expected two tokens separated by a space", file.path(), kMergesKey,
           i, m);
    }
    const std::string_view left = std::string_view(m).substr(0, space);
    const std::string_view right = std::string_view(m).substr(space + 1);
    const int32_t l = vocab_.find(left);
    const int32_t r = vocab_.find(right);
    for (const auto& [id, side] : {std::pair{l, left}, std::pair{r, right}}) {
      if (id == kNoToken) {
        fail("{}: {}[{}] is {:?}, which refers to {:?}, not a token in tokenizer.ggml.tokens",
             file.path(), kMergesKey, i, m, std::string(side));
      }
    }
    const std::string merged = std::string(left) + std::string(right);
    const int32_t id = vocab_.find(merged);
    if (id == kNoToken) {
      fail("{}: {}[{}] is {:?}, but the merged text {:?} is not a token in tokenizer.ggml.tokens",
           file.path(), kMergesKey, i, m, merged);
    }
    // A merge into a control token could make one from plain text; such merges never apply.
    if (vocab_.find_mergeable(merged) == kNoToken) continue;
    merges_.emplace(pair_key(l, r), Merge{static_cast<int32_t>(i), id});  // first rank wins
  }
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (vocab_.ignore_merges) {  // llama3: a word that is a token stays whole
    std::string mapped;
    for (const char c : word) mapped += byte_level().byte_char[static_cast<uint8_t>(c)];
    if (const int32_t id = vocab_.find_mergeable(mapped); id != kNoToken) {
      out.push_back(id);
      return;
    }
  }

  // symbols: (word bytes) one per byte, as each byte is one byte-level character. Adjacent
  // symbols merge when tokenizer.ggml.merges lists their pair, lowest rank first.
  std::vector<MergeSymbol> symbols;
  symbols.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols.push_back({static_cast<uint32_t>(i), 1, byte_ids_[static_cast<uint8_t>(word[i])]});
  }
  merge_pairs(symbols, [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<PairMerge> {
    if (l.id == kNoToken || r.id == kNoToken) return std::nullopt;
    const auto it = merges_.find(pair_key(l.id, r.id));
    if (it == merges_.end()) return std::nullopt;
    return PairMerge{-static_cast<double>(it->second.rank), it->second.id};
  });

  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const MergeSymbol& s = symbols[i];
    out.push_back(s.id != kNoToken ? s.id : unknown_token(word.substr(s.start, s.length)));
  }
}

void BpeTokenizer::encode_text(std::string_view text, bool /*at_boundary*/,
                               std::vector<int32_t>& out) const {
  for (const std::string_view word : pre_tokenize(vocab_.pre, text)) encode_word(word, out);
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, const GgufFile& file) {
  return std::make_unique<BpeTokenizer>(std::move(vocab), file);
}

}  // namespace kvpack::model
