#include "model/gguf.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "base/error.h"
#include "error_of.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using kvpack::testing::read_bytes;

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return kvpack::testing::error_of([&] { GgufFile::parse(bytes, "test.gguf"); });
}

TEST(Gguf, ReadsStories260K) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const GgufFile f = GgufFile::open(path.string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 19u);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.data_offset(), 14176u);
  EXPECT_EQ(f.require_string("general.architecture"), "llama");
  EXPECT_EQ(f.require_int("llama.block_count"), 5);
  EXPECT_EQ(f.require_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.require_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.require_int("llama.attention.head_count_kv"), 4);
  EXPECT_NEAR(*f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  const auto* tokens = f.get_strings("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->size(), 512u);
  const auto* scores = f.get_floats("tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(scores->size(), 512u);
  const GgufTensor* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(emb->type, static_cast<uint32_t>(GgmlType::F32));
  EXPECT_EQ(emb->bytes, 64u * 512 * 4);
  EXPECT_EQ(f.tensor_bytes(), 292800u * 4);
  // Wrong-type access is an error that names the key.
  try {
    f.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
}

TEST(Gguf, VocabOnlyFileHasNoTensors) {
  KVPACK_SHARED_FILE(path, "models/ggml-vocab-llama-spm.gguf");
  const GgufFile f = GgufFile::open(path.string());
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens")->size(), 32000u);
}

TEST(Gguf, EveryTruncationIsACleanError) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const std::vector<uint8_t> full = read_bytes(path);
  // Header, metadata and tensor-info cuts, then a cut inside the tensor data.
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, size_t{30}, size_t{200}, size_t{5000},
                     size_t{14000}, size_t{14176}, full.size() - 1}) {
    const std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    const std::string err = parse_error(part);
    EXPECT_FALSE(err.empty()) << "cut at " << cut;
    EXPECT_NE(err.find("test.gguf"), std::string::npos) << err;
  }
}

TEST(Gguf, CorruptHeadersAreNamed) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  std::vector<uint8_t> bytes = read_bytes(path);
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  EXPECT_NE(parse_error(bad_magic).find("not a GGUF file"), std::string::npos);
  auto bad_version = bytes;
  bad_version[4] = 9;
  EXPECT_NE(parse_error(bad_version).find("version 9"), std::string::npos);
  auto huge_count = bytes;
  for (int i = 16; i < 24; ++i) huge_count[static_cast<size_t>(i)] = 0xff;  // metadata count
  EXPECT_NE(parse_error(huge_count).find("metadata count"), std::string::npos);
}

TEST(Gguf, OpenReportsMissingFile) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

TEST(GgmlType, KnowsSizes) {
  EXPECT_EQ(ggml_type_info(8)->type_size, 34);
  EXPECT_EQ(ggml_type_info(2)->block_size, 32);
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_name(99), "type 99");
}

}  // namespace
}  // namespace kvpack::model
