// Tokenizers built from a GGUF vocabulary: SentencePiece-style BPE ("llama") and GPT-2 byte-level
// BPE ("gpt2", with the GPT-2 / Llama 3 / Qwen 2 pre-tokenizer splits). The rules follow
// llama.cpp where it defines them; docs/tokenizers.md lists them and the few deliberate
// differences.
//
//   auto tok = Tokenizer::from_gguf(file);          // nullptr: the file has no tokenizer
//   std::vector<int32_t> ids = tok->encode("Hello", /*add_special=*/true, /*parse_special=*/false);
//   std::string text = tok->decode(ids);            // "Hello"
//
// A Tokenizer is immutable after construction; all methods are safe to call from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab.h"

namespace kvpack::model {

class GgufFile;

struct DecodeOptions {
  // Render control and unknown tokens (BOS, EOS, chat markers) as their text; by default they
  // decode to nothing. User-defined tokens always render as their text.
  bool render_special = false;
  // Undo SentencePiece's dummy prefix: the first text token of the sequence, and the first after
  // a special token, lose one leading space (llama2.c: "strip the leading space after BOS").
  // Only vocabularies that add the prefix are affected. Set it false to decode a continuation
  // on its own.
  bool strip_prefix_space = true;
  // llama.cpp's detokenizer clean-up, for vocabularies that ask for it (GPT-2 and Llama 3 BPE;
  // not Qwen 2 or SentencePiece): " ?", " !", " .", " ," lose the space, " ' " becomes "'", and
  // " 's", " 'm", " 're", " 've" lose the space. Off by default so that decode inverts encode;
  // on, decode gives the text llama.cpp's llama_detokenize gives.
  bool clean_up_spaces = false;
};

class Tokenizer {
 public:
  // Builds the tokenizer `file` describes. Returns nullptr when the file has no tokenizer
  // (tokenizer.ggml.model absent or "none"; such GGUFs are fine for benchmarks that feed ids).
  // Throws Error naming the key when the vocabulary is malformed or of an unsupported kind.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);

  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text (any bytes; invalid UTF-8 is kept byte for byte where the vocabulary allows) to ids.
  // add_special: prepend BOS / append EOS as the vocabulary's add_bos / add_eos rules say.
  // parse_special: control-token text in `text` (e.g. "<s>", "<|eot_id|>") becomes that token;
  // otherwise it is tokenized as plain text. User-defined tokens are always recognised.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes token `id` stands for: byte tokens give their byte, SentencePiece's U+2581 becomes
  // a space, GPT-2's byte-level characters become their bytes. Control and unknown tokens give
  // "" unless render_special. Throws Error when id is out of range.
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  // Concatenated pieces of `ids`, bytes joined before anything is interpreted, so characters
  // split across byte tokens come out whole. decode(encode(x, add_special, false)) == x for any
  // bytes x when the vocabulary covers every byte, except that SentencePiece turns U+2581 in x
  // into ' '.
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return vocab_.size(); }
  int32_t bos() const { return vocab_.bos; }  // kNoToken (-1) when the vocabulary has none
  int32_t eos() const { return vocab_.eos; }
  int32_t eot() const { return vocab_.eot; }
  int32_t unk() const { return vocab_.unk; }
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  TokenizerModel model() const { return vocab_.model; }
  PreTokenizer pre_tokenizer() const { return vocab_.pre; }
  // EOS, EOT, EOM and the chat end markers llama.cpp also stops on.
  bool is_end_of_generation(int32_t id) const;
  // Control, unknown or user-defined: a token that stands for its text as a whole.
  bool is_special(int32_t id) const;

 protected:
  explicit Tokenizer(Vocab vocab);
  // Appends the ids of `text`, a run with no special tokens in it. `at_boundary`: the run starts
  // the input or follows a special token (where SentencePiece inserts its dummy prefix).
  virtual void encode_text(std::string_view text, bool at_boundary,
                           std::vector<int32_t>& out) const = 0;
  // The unknown token, for `text` that no token covers; Error naming the text when the
  // vocabulary has none.
  int32_t unknown_token(std::string_view text) const;
  // Fills pieces_; `normal_piece` maps the text of a normal/unused/undefined token to its bytes.
  template <typename F>
  void build_pieces(F normal_piece);

  Vocab vocab_;
  std::vector<std::string> pieces_;  // (n_vocab) what each token decodes to (render_special)

 private:
  friend class StreamDecoder;
  struct Fragment {
    std::string_view text;  // plain text when token == kNoToken
    int32_t token;
  };
  std::vector<Fragment> split_specials(std::string_view text, bool parse_special) const;
  void append_piece(int32_t id, const DecodeOptions& options, bool& at_boundary,
                    std::string& out) const;

  std::vector<int32_t> specials_;  // special tokens, longest text first (matching precedence)
};

// Incremental decoding for streaming output: push() returns the text that became complete with
// each token, holding back a UTF-8 character whose bytes are split across byte tokens until it is
// whole. The concatenation of every push() and the final flush() equals decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});
  std::string push(int32_t id);
  // Returns what is held back (an incomplete character at the end of the stream) and resets.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  bool at_boundary_ = true;
  std::string held_;
};

// Builders of the two tokenizer models (tokenizer_spm.cpp, tokenizer_bpe.cpp).
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, const GgufFile& file);

template <typename F>
void Tokenizer::build_pieces(F normal_piece) {
  pieces_.resize(vocab_.text.size());
  for (size_t id = 0; id < pieces_.size(); ++id) {
    const std::string& text = vocab_.text[id];
    switch (vocab_.type[id]) {
      case TokenType::byte:  // "<0xXX>", checked by Vocab
        pieces_[id] = std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
        break;
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::user_defined:
        pieces_[id] = text;
        break;
      default:
        pieces_[id] = normal_piece(text);
        break;
    }
  }
}

}  // namespace kvpack::model
