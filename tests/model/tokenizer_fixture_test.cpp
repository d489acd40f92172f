// llama.cpp's tokenizations with the truncated vocabularies of the architecture fixtures
// (../shared/models/arch): the tokenize/ dumps (each text with and without BOS, and its
// detokenized text) and every golden's prompt_ids (BOS as the vocabulary says, special-token
// text not parsed), for every fixture model and weight type.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using json = nlohmann::json;
using kvpack::testing::read_text;

std::unique_ptr<Tokenizer> load(const std::filesystem::path& gguf) {
  return Tokenizer::from_gguf(GgufFile::open(gguf.string()));
}

// One tokenize/ dump: ids without and with BOS, and llama.cpp's detokenization (special tokens
// not rendered, its clean-up of spaces where the vocabulary asks for it).
void check_dump(const std::filesystem::path& dump_path) {
  const json dump = json::parse(read_text(dump_path));
  const std::filesystem::path model =
      dump_path.parent_path().parent_path() / "models" / dump.at("model").get<std::string>();
  const auto tok = load(model);
  ASSERT_NE(tok, nullptr) << model;
  EXPECT_EQ(tok->add_bos(), dump.at("add_bos").get<bool>()) << model;
  size_t passed = 0;
  size_t n = 0;
  for (const json& c : dump.at("cases")) {
    const auto text = c.at("text").get<std::string>();
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    const auto with_bos = c.at("ids_add_special").get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok->encode(text, false, false);
    EXPECT_EQ(got, ids) << dump_path.filename() << ": " << fmt::format("{:?}", text);
    EXPECT_EQ(tok->encode(text, true, false), with_bos)
        << dump_path.filename() << " with BOS: " << fmt::format("{:?}", text);
    const DecodeOptions llama_cpp{.strip_prefix_space = false, .clean_up_spaces = true};
    EXPECT_EQ(tok->decode(ids, llama_cpp), c.at("detok").get<std::string>())
        << dump_path.filename() << " detokenized: " << fmt::format("{:?}", text);
    passed += got == ids;
    ++n;
  }
  std::printf("%s: %zu/%zu texts tokenize as llama.cpp's\n", dump_path.filename().c_str(), passed,
              n);
}

TEST(TokenizerFixtures, TokenizeDumps) {
  KVPACK_SHARED_FILE(dir, "models/arch/tokenize");
  size_t dumps = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    check_dump(entry.path());
    ++dumps;
  }
  EXPECT_EQ(dumps, 9u);  // llama-bpe, qwen2 and spm-gemma, each on three text sets
}

// Every golden's prompt, tokenized as llama.cpp did for its forward pass.
TEST(TokenizerFixtures, GoldenPromptIds) {
  KVPACK_SHARED_FILE(dir, "models/arch/gold");
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    const json gold = json::parse(read_text(entry.path()));
    const auto tok = load(dir.parent_path() / "models" / gold.at("model").get<std::string>());
    ASSERT_NE(tok, nullptr) << entry.path();
    EXPECT_EQ(tok->add_bos(), gold.at("add_bos").get<bool>()) << entry.path();
    EXPECT_EQ(tok->encode(gold.at("prompt").get<std::string>(), true, false),
              gold.at("prompt_ids").get<std::vector<int32_t>>())
        << entry.path().filename();
    ++files;
  }
  EXPECT_EQ(files, 36u);  // six architectures, three weight types, two prompts
}

}  // namespace
}  // namespace kvpack::model
