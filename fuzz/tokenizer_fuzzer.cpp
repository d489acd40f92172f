// libFuzzer target: encodes arbitrary bytes with a real vocabulary and checks that nothing
// crashes and that the tokenizer's promises hold: encoding is deterministic, decode(encode(x))
// == x (also for invalid UTF-8), streaming decode equals decode, and parsed special tokens
// render back to their text. The first input byte picks the vocabulary and the flags.
//
// Vocabularies: $KVPACK_FUZZ_VOCABS (GGUF paths separated by ':'), else the llama-spm, gpt-2 and
// stories260K vocabularies and the real Qwen3 (qwen2 pre-tokenizer), Llama 3 (llama-bpe) and
// Gemma 3 ones under $KVPACK_SHARED (default: the build's ../shared)/models.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace {

using kvpack::model::DecodeOptions;
using kvpack::model::GgufFile;
using kvpack::model::StreamDecoder;
using kvpack::model::Tokenizer;
using kvpack::model::TokenizerModel;

std::vector<std::unique_ptr<Tokenizer>>& tokenizers() {
  static std::vector<std::unique_ptr<Tokenizer>> all;
  return all;
}

std::vector<std::string> vocab_paths() {
  std::vector<std::string> paths;
  if (const char* list = std::getenv("KVPACK_FUZZ_VOCABS")) {
    std::string s = list;
    for (size_t at = 0; at <= s.size();) {
      const size_t end = std::min(s.find(':', at), s.size());
      if (end > at) paths.push_back(s.substr(at, end - at));
      at = end + 1;
    }
    return paths;
  }
  const char* shared = std::getenv("KVPACK_SHARED");
  const std::filesystem::path dir =
      std::filesystem::path(shared ? shared : KVPACK_SHARED_DEFAULT) / "models";
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "stories260K.gguf",
                           "vocab/ggml-vocab-qwen3.gguf", "vocab/ggml-vocab-llama3.gguf",
                           "vocab/ggml-vocab-gemma3.gguf"}) {
    paths.push_back((dir / name).string());
  }
  return paths;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids,
                          const DecodeOptions& options) {
  StreamDecoder stream(tok, options);
  std::string out;
  for (const int32_t id : ids) out += stream.push(id);
  return out + stream.flush();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  for (const std::string& path : vocab_paths()) {
    auto tok = Tokenizer::from_gguf(GgufFile::open(path));  // an Error here ends the run
    KVPACK_ASSERT(tok != nullptr, "{} has no tokenizer", path);
    tokenizers().push_back(std::move(tok));
  }
  KVPACK_ASSERT(!tokenizers().empty(), "no vocabularies to fuzz");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Tokenizer& tok = *tokenizers()[data[0] % tokenizers().size()];
  const bool add_special = (data[0] >> 4) & 1;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::vector<int32_t> ids = tok.encode(text, add_special, false);
  KVPACK_ASSERT(tok.encode(text, add_special, false) == ids, "encode is not deterministic");
  for (const int32_t id : ids) KVPACK_ASSERT(id >= 0 && id < tok.n_vocab(), "id {}", id);
  const std::string decoded = tok.decode(ids);
  KVPACK_ASSERT(stream_decode(tok, ids, {}) == decoded, "stream decode differs from decode");

  // SentencePiece writes ' ' as U+2581, so U+2581 in the input cannot come back as itself.
  const bool invertible =
      tok.model() != TokenizerModel::spm || text.find("\xE2\x96\x81") == std::string::npos;
  if (invertible) {
    KVPACK_ASSERT(decoded == text, "decode(encode(x)) != x");
    const std::vector<int32_t> parsed = tok.encode(text, false, true);
    KVPACK_ASSERT(tok.decode(parsed, {.render_special = true}) == text,
                  "parsed special tokens do not render back");
  }
  return 0;
}
