// llama.cpp's tokenizer test vectors (test-tokenizer-0): every case of
// ggml-vocab-{llama-spm,gpt-2}.gguf.inp/.out, plus decode round trips and streaming decode.
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
// newline before the separator). .out: one line per input, the ids separated by spaces, without
// BOS (tokenized with add_special = false, parse_special = false).
std::vector<VocabCase> read_cases(const std::filesystem::path& gguf) {
  const std::string inp = read_text(gguf.string() + ".inp");
  const std::string out = read_text(gguf.string() + ".out");
  constexpr std::string_view kSep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (size_t at = 0; at < inp.size();) {
    const size_t end = inp.find(kSep, at);
    EXPECT_NE(end, std::string::npos) << "unterminated case at byte " << at;
    if (end == std::string::npos) break;
    cases.push_back({inp.substr(at, end - at), {}});
    at = end + kSep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (i >= cases.size()) {
      ADD_FAILURE() << "more .out lines than .inp cases";
      break;
    }
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) cases[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << ".out lines vs .inp cases";
  return cases;
}

std::string printable(const std::string& s) {
  return fmt::format("{:?}", s);
}

void check_vocab_cases(const std::filesystem::path& path, size_t expected_cases) {
  const GgufFile file = GgufFile::open(path.string());
  const auto tok = Tokenizer::from_gguf(file);
  ASSERT_NE(tok, nullptr);
  const std::vector<VocabCase> cases = read_cases(path);
  ASSERT_EQ(cases.size(), expected_cases);
  size_t passed = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> ids = tok->encode(c.text, false, false);
    EXPECT_EQ(ids, c.ids) << "input " << printable(c.text);
    EXPECT_EQ(tok->decode(ids), c.text) << "round trip of " << printable(c.text);
    // Streaming gives the same bytes, one token at a time.
    StreamDecoder stream(*tok);
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, c.text) << "streamed " << printable(c.text);
    passed += ids == c.ids;
  }
  std::printf("%s: %zu/%zu vocab cases pass\n", path.filename().c_str(), passed, cases.size());
}

TEST(TokenizerVocab, LlamaSpmCases) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  check_vocab_cases(path, 46);
}

TEST(TokenizerVocab, Gpt2Cases) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-gpt-2.gguf");
  check_vocab_cases(path, 46);
}

}  // namespace
}  // namespace kvpack::model
