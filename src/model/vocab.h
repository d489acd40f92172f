// A tokenizer vocabulary read from GGUF metadata (tokenizer.ggml.*): token texts, scores, types,
// special ids and the BOS/EOS rules, validated so the tokenizers can index without checks. The
// model-specific parts (SentencePiece merges by score, GPT-2 merges by rank) live in
// tokenizer_spm.cpp / tokenizer_bpe.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvpack::model {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  undefined = 0,  // treated like normal
  normal = 1,
  unknown = 2,
  control = 3,       // BOS, EOS, chat markers: never produced from plain text
  user_defined = 4,  // added tokens: always matched as a whole in the text
  unused = 5,
  byte = 6,  // SentencePiece byte fallback "<0xXX>"
};

// tokenizer.ggml.model
enum class TokenizerModel {
  spm,  // "llama": SentencePiece BPE by score with byte fallback
  bpe,  // "gpt2": byte-level BPE by merge rank
};

// How a "gpt2" vocabulary splits text into words before BPE (tokenizer.ggml.pre).
enum class PreTokenizer {
  none,    // SentencePiece vocabularies: no split
  gpt2,    // "gpt-2", "default" or absent: GPT-2's regex
  llama3,  // "llama3", "llama-v3", "llama-bpe", "falcon3": digits in runs of 1-3
  qwen2,   // "qwen2", "deepseek-r1-qwen", "megrez": digits one at a time
};

constexpr int32_t kNoToken = -1;

struct Vocab {
  TokenizerModel model = TokenizerModel::spm;
  PreTokenizer pre = PreTokenizer::none;
  std::string source;  // file name, for error messages

  std::vector<std::string> text;  // (n_vocab) token text as stored in GGUF
  std::vector<float> score;       // (n_vocab) SentencePiece log-probabilities; 0 when absent
  std::vector<TokenType> type;    // (n_vocab)

  int32_t bos = kNoToken;
  int32_t eos = kNoToken;
  int32_t eot = kNoToken;  // end of turn (chat models); from the key or found by text
  int32_t eom = kNoToken;  // end of message (Llama 3.1 tool calls)
  int32_t unk = kNoToken;
  int32_t pad = kNoToken;
  bool add_bos = false;           // encode(add_special) prepends BOS
  bool add_eos = false;           // encode(add_special) appends EOS
  bool add_space_prefix = false;  // SentencePiece "dummy prefix": a space before each text run
  bool ignore_merges = false;     // llama3: a word that is a whole token skips the merges
  bool clean_spaces = false;      // decode may undo " ?" -> "?" etc. (gpt-2 and llama3 BPE)
  std::vector<int32_t> end_of_generation;  // sorted ids that end generation

  int32_t size() const { return static_cast<int32_t>(text.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < size(); }
  // Id of the token whose text is exactly `s`, of any type; kNoToken when none.
  int32_t find(std::string_view s) const;
  // As find, but only tokens that plain text may turn into (normal, undefined, unused,
  // user-defined); control, unknown and byte tokens are reachable only by their own rules.
  int32_t find_mergeable(std::string_view s) const;

  // Reads and validates the vocabulary. Returns nullopt when the file has no tokenizer
  // (tokenizer.ggml.model absent, "none" or "no_vocab"). Throws Error naming the key for
  // anything malformed or unsupported.
  static std::optional<Vocab> from_gguf(const GgufFile& file);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;

  void index_texts();
};

// Name of a pre-tokenizer as used in docs and errors ("gpt-2", "llama3", "qwen2", "none").
std::string_view pre_tokenizer_name(PreTokenizer p);

}  // namespace kvpack::model
