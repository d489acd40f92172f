// `kvpack inspect` through the built binary.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_run.h"
#include "model/gguf_writer.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

TEST(InspectCli, Stories260K) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  const auto r = testing::run_kvpack("inspect '" + path.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"GGUF v3", "19 metadata keys", "48 tensors", "data at 14176",
                        "llama.block_count", "tokenizer.ggml.tokens", "string[512]", "... 504 more",
                        "token_embd.weight", "64 x 512", "F32: 48"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out.substr(0, 3000);
  }
  // Arrays are abbreviated: the 512 tokens do not all appear.
  EXPECT_LT(r.out.size(), 20000u);
}

TEST(InspectCli, EscapesAndCutsStrings) {
  const std::filesystem::path tmp = kvpack::testing::temp_path("inspect_test.gguf");
  GgufWriter w;
  w.set("general.architecture", gguf_string("llama"))
      .set("tokenizer.chat_template", gguf_string("line1\nline2\t" + std::string(200, 'x')))
      .set("flags", gguf_int_array(GgufType::boolean, {1, 0}));
  w.add_zero_tensor("blk.0.attn_q.weight", {64, 2}, GgmlType::Q4_0);
  w.write(tmp.string());
  const auto r = testing::run_kvpack("inspect --max-items 1 '" + tmp.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"line1\\nline2\\t"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("... (212 bytes)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[true, ... 1 more]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Q4_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("64 x 2"), std::string::npos) << r.out;
  std::filesystem::remove(tmp);
}

TEST(InspectCli, BadFilesAreOneLineErrors) {
  const auto r = testing::run_kvpack("inspect /nonexistent/model.gguf");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err.rfind("kvpack: error: /nonexistent/model.gguf: cannot open", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace kvpack::model
