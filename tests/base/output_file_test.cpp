#include "base/output_file.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.h"
#include "cli_run.h"
#include "error_of.h"

namespace kvpack {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = kvpack::testing::temp_path("output_file_test");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  // Entries of the folder besides the named ones (left-over temporary files).
  int others(std::initializer_list<std::string> names) const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string f = e.path().filename().string();
      n += std::find(names.begin(), names.end(), f) == names.end();
    }
    return n;
  }

  fs::path dir_;
};

TEST_F(OutputFileTest, WritesAndReplacesKeepingPermissions) {
  write_output_file(path("a.txt"), "first");
  EXPECT_EQ(read(path("a.txt")), "first");
  fs::permissions(path("a.txt"),
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  write_output_file(path("a.txt"), "second, longer");
  EXPECT_EQ(read(path("a.txt")), "second, longer");
  EXPECT_EQ(fs::status(path("a.txt")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_EQ(others({"a.txt"}), 0);
}

TEST_F(OutputFileTest, AFailedWriteLeavesTheOldFilesAndNoTemporaryFile) {
  write_output_file(path("a.txt"), "old a");
  write_output_file(path("b.txt"), "old b");
  // A file-size limit fails the second, larger file the way a full disk would (EFBIG).
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(100000, 'x');
  const OutputFile files[] = {{path("a.txt"), "new a"}, {path("b.txt"), big}};
  const std::string err = error_of([&] { write_output_files(files); });
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(err.find("b.txt: cannot write: File too large"), std::string::npos) << err;
  EXPECT_EQ(read(path("a.txt")), "old a");  // not renamed: b failed before any rename
  EXPECT_EQ(read(path("b.txt")), "old b");
  EXPECT_EQ(others({"a.txt", "b.txt"}), 0);
}

TEST_F(OutputFileTest, ChecksPathsBeforeWork) {
  EXPECT_NE(error_of([&] { check_output_path(path("missing/x.txt")); }).find("does not exist"),
            std::string::npos);
  write_output_file(path("file"), "x");
  EXPECT_NE(error_of([&] { check_output_path(path("file/x.txt")); }).find("is not a folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { check_output_path(dir_.string()); }).find("it is a directory"),
            std::string::npos);
  const std::vector<std::string> inputs = {path("file")};
  fs::create_symlink(path("file"), path("alias"));
  EXPECT_NE(error_of([&] { check_output_path(path("alias"), inputs); }).find("input file"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { check_output_path(path("new.txt"), inputs); }), "");
  EXPECT_FALSE(fs::exists(path("new.txt")));  // the probe file is gone
  EXPECT_NE(error_of([&] { check_output_path(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { check_output_path("/sys/kvpack-x"); }).find("Permission denied"),
            std::string::npos);
}

TEST_F(OutputFileTest, FollowsLinksAndWritesDevicesInPlace) {
  write_output_file(path("real"), "old");
  fs::create_symlink(path("real"), path("link"));
  write_output_file(path("link"), "new");
  EXPECT_TRUE(fs::is_symlink(path("link")));
  EXPECT_EQ(read(path("real")), "new");
  fs::create_symlink(path("link2"), path("loop"));
  fs::create_symlink(path("loop"), path("link2"));
  EXPECT_NE(error_of([&] { write_output_file(path("loop"), "x"); }).find("symbolic link"),
            std::string::npos);
  write_output_file("/dev/null", "discarded");
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_NE(error_of([&] { write_output_file("/dev/full", "x"); }).find("No space left"),
            std::string::npos);
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { write_output_file(path("fifo"), "x"); }).find("nobody reads"),
            std::string::npos);
}

// kill (or Ctrl-C) while a large file is written: the target is untouched and the temporary
// file is removed before the process ends by the signal. The child writes 256 MiB; the parent
// waits until the temporary file exists, then sends SIGTERM.
TEST_F(OutputFileTest, AnInterruptRemovesTheTemporaryFile) {
  write_output_file(path("big.bin"), "old");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string big(size_t{256} << 20, 'x');
    write_output_file(path("big.bin"), big);
    _exit(0);
  }
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    seen = others({"big.bin"}) > 0;
    if (!seen) usleep(500);
  }
  kill(child, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(seen) << "the temporary file never appeared";
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    EXPECT_EQ(read(path("big.bin")), "old");
  }  // else the write finished first: the file is whole, which is as good
  EXPECT_EQ(others({"big.bin"}), 0);
}

}  // namespace
}  // namespace kvpack
