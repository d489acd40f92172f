#include "base/input_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "cli_run.h"
#include "error_of.h"

namespace kvpack {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

TEST(InputFile, RegularFilesOnlyForModelsWithoutBlocking) {
  const fs::path dir = fs::path(kvpack::testing::temp_path("input_file_test"));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  uint64_t size = 0;
  // A FIFO with no writer: open() would block forever without O_NONBLOCK.
  EXPECT_EQ(error_of([&] { open_regular_file(fifo, "GGUF model", &size); }),
            fifo + ": is a named pipe, expected a GGUF model file");
  EXPECT_NE(error_of([&] {
              open_regular_file(dir.string(), "GGUF model", &size);
            }).find("is a directory"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              open_regular_file("/dev/zero", "GGUF model", &size);
            }).find("is a character device"),
            std::string::npos);
  std::ofstream(dir / "f") << "12345";
  const int fd = open_regular_file((dir / "f").string(), "GGUF model", &size);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(size, 5u);
  close(fd);
  fs::remove_all(dir);
}

TEST(InputFile, TextInputsAreFilesOrPipesAndBounded) {
  const fs::path dir = fs::path(kvpack::testing::temp_path("text_input_test"));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "t.txt") << "hello";
  EXPECT_EQ(read_text_input((dir / "t.txt").string(), "text file"), "hello");
  EXPECT_NE(error_of([&] {
              read_text_input((dir / "t.txt").string(), "text file", 4);
            }).find("larger than the 4 B a text input may have"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { read_text_input(dir.string(), "prompt file"); }).find("it is a directory"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              read_text_input("/dev/zero", "prompt file");
            }).find("it is a character device"),
            std::string::npos);
  // A pipe is read to its end, and bounded while it is read.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "0123456789", 10), 10);
  close(p[1]);
  const std::string path = "/proc/self/fd/" + std::to_string(p[0]);
  EXPECT_NE(error_of([&] { read_text_input(path, "text file", 8); }).find("larger than"),
            std::string::npos);
  close(p[0]);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kvpack
