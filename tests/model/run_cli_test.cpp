// `kvpack run` through the built binary: the golden stories260K generation on stdout, the
// statistics on stderr, and one-line errors with a non-zero exit for every kind of bad input.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_run.h"
#include "model/synthetic_model.h"
#include "poisoned_weights.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using kvpack::testing::read_text;

std::string temp_path(const std::string& name) {
  return kvpack::testing::temp_path("run_cli_" + name);
}

// A failed run: status 1, nothing on stdout, one "kvpack: error: ..." line holding `part`.
TEST(RunCli, StoriesGreedyFromBosMatchesLlama2c) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(expected, "models/stories260K.greedy200.expected.txt");
  for (const char* kv : {"--kv k=f32,v=f32", "-ctk f16 -ctv f16"}) {
    const auto r = testing::run_kvpack("run -m '" + model.string() +
                                       "' -p '' -n 200 --temp 0 -c 512 -t 2 " + kv);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, read_text(expected)) << kv;
    for (const char* s : {"prefill      1 tokens", "decode     199 tokens", "tokens/s",
                          "bytes/token", "kv cache residency", "active"}) {
      EXPECT_NE(r.err.find(s), std::string::npos) << s << "\n" << r.err;
    }
  }
}

TEST(RunCli, PromptFromFileIsStreamedFirst) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const std::string prompt = temp_path("prompt.txt");
  std::ofstream(prompt) << "Once upon a time, there was a cat";
  const auto r = testing::run_kvpack("run -m '" + model.string() + "' -f '" + prompt +
                                     "' -n 16 --temp 0.8 --seed 5 --top-k 20 --top-p 0.9 "
                                     "--min-p 0.02 --repeat-penalty 1.1 --kv k=q8,v=q8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a cat", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), 40u);
  EXPECT_NE(r.err.find("k=q8,v=q8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("seed 5"), std::string::npos) << r.err;
  // The same seed gives the same text.
  const auto again = testing::run_kvpack("run -m '" + model.string() + "' -f '" + prompt +
                                         "' -n 16 --temp 0.8 --seed 5 --top-k 20 --top-p 0.9 "
                                         "--min-p 0.02 --repeat-penalty 1.1 --kv k=q8,v=q8");
  EXPECT_EQ(again.out, r.out);
}

TEST(RunCli, BadInputIsAOneLineError) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(vocab, "models/ggml-vocab-llama-spm.gguf");
  const std::string m = "run -p hi -m ";
  testing::expect_one_line_error(m + "'" + vocab.string() + "'", "has no tensors");

  const std::string bytes = read_text(model);
  const std::string truncated = temp_path("truncated.gguf");
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  testing::expect_one_line_error(m + truncated, "truncated");

  GgufWriter w = synthetic_model(SyntheticModel{});
  w.set("general.architecture", gguf_string("mamba9"));
  w.write(temp_path("mamba9.gguf"));
  testing::expect_one_line_error(m + temp_path("mamba9.gguf"), "unknown architecture 'mamba9'");

  SyntheticModel iq2;
  iq2.n_embd = 256;
  iq2.retype = {{"blk.0.attn_v.weight", GgmlType::IQ2_XXS}};
  synthetic_model(iq2).write(temp_path("iq2.gguf"));
  testing::expect_one_line_error(m + temp_path("iq2.gguf"),
                                 "tensor 'blk.0.attn_v.weight' has type IQ2_XXS");

  synthetic_model(SyntheticModel{}).write(temp_path("notok.gguf"));
  testing::expect_one_line_error(m + temp_path("notok.gguf"), "has no tokenizer");

  // A broken model fails its prefill with one line, before anything is echoed.
  const std::vector<uint8_t> poisoned = kvpack::testing::with_nan_weight(
      std::vector<uint8_t>(bytes.begin(), bytes.end()), "blk.2.attn_v.weight");
  std::ofstream(temp_path("nan.gguf"), std::ios::binary)
      .write(reinterpret_cast<const char*>(poisoned.data()),
             static_cast<std::streamsize>(poisoned.size()));
  testing::expect_one_line_error(m + temp_path("nan.gguf"),
                                 "non-finite V value nan in append to sequence 0, layer 2");

  testing::expect_one_line_error(
      "run -m '" + model.string() + "' -c 8 -p 'Once upon a time there was a dog'",
      "longer than the context of 8 tokens");
  testing::expect_one_line_error("run -m '" + model.string() + "' -p hi --kv k=q9",
                                 "unknown KV format 'q9'");
  testing::expect_one_line_error("run -m /nonexistent.gguf -p hi", "/nonexistent.gguf");
}

}  // namespace
}  // namespace kvpack::model
