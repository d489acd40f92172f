// llama.cpp's tokenizer test vectors (test-tokenizer-0): every case of
// ggml-vocab-{llama-spm,gpt-2}.gguf.inp/.out and of the real Qwen3, Llama 3 and Gemma 3
// vocabularies in models/vocab (their .inp/.out and .extra.inp/.extra.out), plus decode round
// trips and streaming decode.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using kvpack::testing::read_text;

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: each input is followed by "\n__ggml_vocab_test__\n" (so an input never includes the
// newline before the separator); in the gemma-4 layout the last input has no separator and runs
// to the end of the file. .out: one line per input, the ids separated by spaces (with or without
// a leading space), without BOS (tokenized with add_special = false, parse_special = false).
// This is how llama.cpp's test-tokenizer-0 reads both layouts.
std::vector<VocabCase> read_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string inp = read_text(inp_path);
  const std::string out = read_text(out_path);
  constexpr std::string_view kSep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (size_t at = 0; at < inp.size();) {
    size_t end = inp.find(kSep, at);
    if (end == std::string::npos) {  // gemma-4 layout: the last text ends the file
      cases.push_back({inp.substr(at), {}});
      break;
    }
    cases.push_back({inp.substr(at, end - at), {}});
    at = end + kSep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (i >= cases.size()) {
      ADD_FAILURE() << "more .out lines than .inp cases in " << out_path;
      break;
    }
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) cases[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << ".out lines vs .inp cases in " << out_path;
  return cases;
}

std::string printable(const std::string& s) {
  return fmt::format("{:?}", s);
}

// Every case of `suffix` (".inp"/".out" or ".extra.inp"/".extra.out") next to the GGUF: the ids
// exactly, and decoding (whole and streamed) gives the text back.
void check_vocab_cases(const Tokenizer& tok, const std::filesystem::path& path,
                       std::string_view suffix, size_t expected_cases) {
  const std::string base = path.string() + std::string(suffix);
  const std::vector<VocabCase> cases = read_cases(base + "inp", base + "out");
  ASSERT_EQ(cases.size(), expected_cases);
  size_t passed = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> ids = tok.encode(c.text, false, false);
    EXPECT_EQ(ids, c.ids) << "input " << printable(c.text);
    EXPECT_EQ(tok.decode(ids), c.text) << "round trip of " << printable(c.text);
    // Streaming gives the same bytes, one token at a time.
    StreamDecoder stream(tok);
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, c.text) << "streamed " << printable(c.text);
    passed += ids == c.ids;
  }
  std::printf("%s%s: %zu/%zu vocab cases pass\n", path.filename().c_str(),
              std::string(suffix).c_str(), passed, cases.size());
}

void check_vocab_cases(const std::filesystem::path& path, size_t expected_cases) {
  const GgufFile file = GgufFile::open(path.string());
  const auto tok = Tokenizer::from_gguf(file);
  ASSERT_NE(tok, nullptr);
  check_vocab_cases(*tok, path, ".", expected_cases);
}

// The real vocabularies of ../shared/models/vocab: llama.cpp's own vectors and the 35 extra
// multilingual texts.
void check_real_vocab(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path.string());
  const auto tok = Tokenizer::from_gguf(file);
  ASSERT_NE(tok, nullptr);
  check_vocab_cases(*tok, path, ".", 46);
  check_vocab_cases(*tok, path, ".extra.", 35);
}

TEST(TokenizerVocab, LlamaSpmCases) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  check_vocab_cases(path, 46);
}

TEST(TokenizerVocab, Gpt2Cases) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-gpt-2.gguf");
  check_vocab_cases(path, 46);
}

TEST(TokenizerVocab, Qwen3Cases) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-qwen3.gguf");
  check_real_vocab(path);
}

TEST(TokenizerVocab, Llama3Cases) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-llama3.gguf");
  check_real_vocab(path);
}

TEST(TokenizerVocab, Gemma3Cases) {
  KVPACK_SHARED_FILE(path, "models/vocab/ggml-vocab-gemma3.gguf");
  check_real_vocab(path);
}

}  // namespace
}  // namespace kvpack::model
