// `kvpack serve`'s bad input: one error line naming it, exit status 1, nothing else printed.
#include <gtest/gtest.h>

#include "cli_run.h"
#include "probe_model.h"
#include "shared_data.h"

namespace kvpack::testing {
namespace {

TEST(ServeCli, BadInputIsAOneLineError) {
  KVPACK_PROBE_MODEL(probe);
  KVPACK_SHARED_FILE(vocab, "models/ggml-vocab-llama-spm.gguf");
  const std::string m = "serve --port 0 -m '" + probe.string() + "' ";
  expect_one_line_error("serve --port 0 -m /nonexistent/model.gguf",
                        "/nonexistent/model.gguf: no such file");
  expect_one_line_error("serve --port 0 -m '" + vocab.string() + "'", "no tensors");
  expect_one_line_error(m + "--kv k=bogus,v=f16", "bogus");
  expect_one_line_error(m + "--kv-budget 64KiB", "less than one context");
  expect_one_line_error(m + "-c 0", "-c 0");
  expect_one_line_error(m + "--host 256.1.1.1", "cannot listen on 256.1.1.1");
}

}  // namespace
}  // namespace kvpack::testing
