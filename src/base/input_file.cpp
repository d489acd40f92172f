#include "base/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/units.h"

namespace kvpack {
namespace {

// Closes the descriptor on every path out, errors included.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string_view file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

int open_regular_file(const std::string& path, std::string_view what, uint64_t* size) {
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("{}: cannot open: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: is {}, expected a {} file", path, file_kind(st.st_mode), what);
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

std::string read_text_input(const std::string& path, std::string_view what, uint64_t max_bytes) {
  if (path.empty()) fail("the {} path is empty", what);
  // Blocking open: a FIFO named as a text input is read once its writer comes, as `cat` does.
  const Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail("cannot read the {} '{}': {}", what, path, std::strerror(errno));
  struct stat st {};
  if (fstat(f.fd, &st) != 0) fail("cannot read the {} '{}': {}", what, path, std::strerror(errno));
  const bool stream =
      S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(f.fd) != 0);
  if (!S_ISREG(st.st_mode) && !stream) {
    fail("cannot read the {} '{}': it is {}, not a text file", what, path, file_kind(st.st_mode));
  }
  const auto too_large = [&] {
    fail("the {} '{}' is larger than the {} a text input may have", what, path,
         format_bytes(static_cast<double>(max_bytes)));
  };
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > max_bytes) too_large();
  std::string text;
  if (S_ISREG(st.st_mode)) text.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read the {} '{}': {}", what, path, std::strerror(errno));
    }
    if (text.size() + static_cast<size_t>(n) > max_bytes) too_large();
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace kvpack
