// Files a careless or hostile user gives kvpack (docs/cli.md, "Bad input"): inputs that are not
// regular files, outputs that cannot be written, a full disk, a closed or full stdout, and a
// GGUF whose metadata says fewer layers than its tensors hold.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "cli_fixtures.h"
#include "cli_run.h"
#include "model/synthetic_model.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::testing {
namespace {

// A named pipe given as a model hung in open(); /dev/zero, /dev/stdin and a directory are
// refused as what they are. `timeout 20` turns a hang back into a failure.
TEST(FilesCli, ModelsMustBeRegularFiles) {
  const ScratchDir dir("model_files");
  const std::string fifo = dir / "pipe.gguf";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string loop = dir / "loop.gguf";
  std::filesystem::create_symlink(loop, loop);
  for (const std::string cmd :
       {"inspect ", "plan -m ", "run -p hi -m ", "bench decode -m ", "eval passkey -m "}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(cmd + shell_quote(fifo), "is a named pipe, expected a GGUF model file", 1,
                          "timeout 20");
    expect_one_line_error(cmd + "/dev/zero", "/dev/zero: is a character device", 1, "timeout 20");
    expect_one_line_error(cmd + shell_quote(dir.path().string()), "is a directory", 1,
                          "timeout 20");
    expect_one_line_error(cmd + shell_quote(loop), "Too many levels of symbolic links", 1,
                          "timeout 20");
  }
  expect_one_line_error("inspect /dev/stdin < /dev/null", "/dev/stdin: is a character device", 1,
                        "timeout 20");
}

// A directory given to run -f read as an empty prompt; /dev/zero would never end. A pipe is a
// text input like a file.
TEST(FilesCli, TextInputsArePipesOrRegularFiles) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const ScratchDir dir("text_files");
  const std::string m = "-m " + shell_quote(model.string());
  for (const std::string& cmd :
       {"run " + m + " -n 1 -f ", "eval ppl " + m + " -f ", "eval attention " + m + " -f "}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(cmd + shell_quote(dir.path().string()), "it is a directory", 1,
                          "timeout 20");
    expect_one_line_error(cmd + "/dev/zero", "it is a character device", 1, "timeout 20");
    expect_one_line_error(cmd + shell_quote(dir / "missing.txt"), "No such file or directory", 1,
                          "timeout 20");
  }
  expect_one_line_error(
      "run " + m + " -p hi --chat --chat-template-file " + shell_quote(dir.path().string()),
      "it is a directory", 1, "timeout 20");
  const CliResult r = run_kvpack("run " + m + " -n 0 --temp 0 -f /dev/stdin", "echo Once upon |");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon", 0), 0u) << r.out;
}

// Unicode and spaces in paths are ordinary paths.
TEST(FilesCli, UnicodePathsWork) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const ScratchDir dir("unicode_paths");
  const std::string path = dir / "mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b 'x'.gguf";
  std::filesystem::copy_file(model, path);
  const CliResult r = run_kvpack("inspect --no-tensors " + shell_quote(path));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b"), std::string::npos);
}

// dev synth-model on a full disk replaced a good file with a truncated one. A file-size limit
// (ulimit -f) fails the write the way a full disk does; the good file must stay as it was and
// no temporary file may be left beside it.
TEST(FilesCli, AFailedWriteLeavesTheOldFile) {
  const ScratchDir dir("full_disk");
  const std::string out = dir / "model.gguf";
  const std::string args = "dev synth-model --out " + shell_quote(out);
  ASSERT_EQ(run_kvpack(args).status, 0);
  const std::string good = read_text(out);
  const std::string big = args + " --embd 256 --ff 512 --vocab 512 --seed 7";
  const CliResult r = expect_one_line_error(big, "cannot write", 1, "ulimit -f 64;");
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(out), good);
  EXPECT_EQ(temp_files_in(dir.path()), 0);
  // Without the limit the same command replaces the file.
  ASSERT_EQ(run_kvpack(big).status, 0);
  EXPECT_GT(read_text(out).size(), 64u * 512);
  EXPECT_EQ(temp_files_in(dir.path()), 0);
}

// -o into a missing folder, into a file, or over an input failed only after the whole
// evaluation; now before the model is even read (the model here does not exist, and the error
// is still about the output).
TEST(FilesCli, OutputPathsAreCheckedBeforeAnyWork) {
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const ScratchDir dir("early_outputs");
  const std::string t = shell_quote(text.string());
  const std::string none = "-m /nonexistent/model.gguf";
  expect_one_line_error("eval ppl " + none + " -f " + t + " -o /nonexistent/dir/report",
                        "the folder '/nonexistent/dir' does not exist");
  expect_one_line_error("eval passkey " + none + " -o " + shell_quote(text.string() + "/x"),
                        "is not a folder");
  const std::string notes = dir / "notes.md";
  std::ofstream(notes) << "Once upon a time there was a cat. " << std::string(4000, 'a');
  expect_one_line_error(
      "eval attention " + none + " -f " + shell_quote(notes) + " -o " + shell_quote(dir / "notes"),
      "it is the input file");
  EXPECT_EQ(read_text(notes).size(), 4034u);
  std::filesystem::create_directory(dir / "report.md");
  expect_one_line_error("eval passkey " + none + " -o " + shell_quote(dir / "report"),
                        "report.md: cannot write: it is a directory");
  expect_one_line_error("dev synth-model --out /nonexistent/x.gguf --embd 4096 --vocab 32000",
                        "does not exist");
  expect_one_line_error("dev synth-model --out " + shell_quote(dir.path().string()),
                        "it is a directory");
  // A folder nobody may create files in (sysfs refuses even root), and where permissions bind
  // (not as root) a read-only folder of our own: both fail at once.
  expect_one_line_error("eval passkey " + none + " -o /sys/kvpack-report", "Permission denied");
  std::filesystem::create_directory(dir / "ro");
  std::filesystem::permissions(
      dir / "ro", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  if (geteuid() != 0) {
    expect_one_line_error("eval passkey " + none + " -o " + shell_quote(dir / "ro/x"),
                          "Permission denied");
  }
}

// Devices are written directly (never replaced), a symbolic link is followed and kept.
TEST(FilesCli, OutputsThroughDevicesAndLinks) {
  const ScratchDir dir("output_kinds");
  ASSERT_EQ(run_kvpack("dev synth-model --out /dev/null").status, 0);
  const std::string real = dir / "real.gguf", link = dir / "link.gguf";
  std::ofstream(real) << "old";
  std::filesystem::create_symlink(real, link);
  ASSERT_EQ(run_kvpack("dev synth-model --out " + shell_quote(link)).status, 0);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_GT(read_text(real).size(), 1000u);
  EXPECT_EQ(read_text(real).rfind("GGUF", 0), 0u);
}

// A full stdout is an error, not a silent truncation; a closed one (| head) ends kvpack quietly.
TEST(FilesCli, StdoutWriteErrors) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  expect_one_line_error("formats > /dev/full", "cannot write the output: No space left on device");
  const CliResult r = run_kvpack("inspect " + shell_quote(model.string()) + " | head -c 100");
  EXPECT_EQ(r.out.size(), 100u);
  EXPECT_EQ(r.err, "");
}

// A GGUF whose block_count is below the layers its tensors hold ran with the extra layers
// silently ignored.
TEST(FilesCli, MetadataWithFewerLayersThanTensorsIsRefused) {
  const ScratchDir dir("layers");
  model::SyntheticModel s;
  s.n_layers = 3;
  model::GgufWriter w = model::synthetic_model(s);
  w.set("llama.block_count", model::gguf_uint(model::GgufType::u32, 2));
  w.write(dir / "short.gguf");
  expect_one_line_error("bench decode -n 1 -r 1 -m " + shell_quote(dir / "short.gguf"),
                        "tensor 'blk.2.attn_norm.weight' belongs to layer 2, but the metadata "
                        "says the model has 2 layers");
}

}  // namespace
}  // namespace kvpack::testing
