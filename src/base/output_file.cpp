#include "base/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <csignal>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/error.h"

namespace kvpack {
namespace {

namespace fs = std::filesystem;

// Where the bytes of one output go.
struct Target {
  std::string path;     // as given, for messages
  std::string real;     // the file written: a symbolic link's target, or `path`
  bool exists = false;  // `real` exists (a regular file, a device or a FIFO)
  bool direct = false;  // a device or a FIFO: written in place
  mode_t mode = 0;      // permissions of the file replaced (kept by the new one)
};

[[noreturn]] void cannot_write(const std::string& path, std::string_view why) {
  fail("{}: cannot write: {}", path, why);
}

// The reason for errno after creating a file in `folder` failed.
std::string create_error(const std::string& folder, int err) {
  if (err == ENOENT) return fmt::format("the folder '{}' does not exist", folder);
  if (err == ENOTDIR) return fmt::format("'{}' is not a folder", folder);
  return std::strerror(err);
}

std::string folder_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

Target resolve(const std::string& path) {
  if (path.empty()) fail("an output path is empty");
  Target t{path, path};
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return t;  // a new file: its folder is checked when it is created
    cannot_write(path, create_error(folder_of(path), errno));
  }
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const fs::path real = fs::canonical(path, ec);
    if (ec) cannot_write(path, "it is a symbolic link that cannot be followed: " + ec.message());
    t.real = real.string();
    if (stat(t.real.c_str(), &st) != 0) cannot_write(path, std::strerror(errno));
  }
  t.exists = true;
  if (S_ISDIR(st.st_mode)) cannot_write(path, "it is a directory");
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    t.direct = true;
  } else if (!S_ISREG(st.st_mode)) {
    cannot_write(path, "it is not a regular file");  // a block device or a socket
  }
  t.mode = st.st_mode & 07777;
  return t;
}

// Temporary files not yet renamed or removed. When SIGINT, SIGTERM or SIGHUP ends kvpack while
// one exists, the handler removes it (unlink is async-signal-safe) and re-raises the signal, so
// an interrupted write leaves neither a partial target nor a stray temporary file.
constexpr int kMaxPending = 8;
char g_pending[kMaxPending][PATH_MAX];
volatile std::sig_atomic_t g_pending_used[kMaxPending];

extern "C" void remove_pending_and_reraise(int sig) {
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_pending_used[i] != 0) ::unlink(g_pending[i]);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Installed once, and only over the default action (a signal the parent ignores stays so).
void install_signal_handlers() {
  static const bool installed = [] {
    for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = remove_pending_and_reraise;
      sigemptyset(&sa.sa_mask);
      sigaction(sig, &sa, nullptr);
    }
    return true;
  }();
  (void)installed;
}

void remember_temp(const std::string& temp) {
  install_signal_handlers();
  if (temp.size() >= PATH_MAX) return;
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_pending_used[i] == 0) {
      std::memcpy(g_pending[i], temp.c_str(), temp.size() + 1);
      g_pending_used[i] = 1;
      return;
    }
  }
}

void forget_temp(const std::string& temp) {
  for (int i = 0; i < kMaxPending; ++i) {
    if (g_pending_used[i] != 0 && temp == g_pending[i]) g_pending_used[i] = 0;
  }
}

// Removes a temporary file that will not be renamed.
void discard_temp(const std::string& temp) {
  if (temp.empty()) return;
  ::unlink(temp.c_str());
  forget_temp(temp);
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A new, empty file beside t.real with a name no one else uses; its path in *temp.
int create_temp(const Target& t, std::string* temp) {
  static std::atomic<unsigned> counter{0};
  const std::string folder = folder_of(t.real);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    *temp = (fs::path(folder) / fmt::format(".kvpack-{}-{}.tmp", getpid(), counter++)).string();
    // Remembered before it exists: a signal arriving just after open() still removes it.
    remember_temp(*temp);
    // 0666 as any new file; the umask applies. A replaced file's permissions are copied below.
    const int fd = ::open(temp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    const int err = errno;
    forget_temp(*temp);
    if (err != EEXIST) cannot_write(t.path, create_error(folder, err));
  }
  cannot_write(t.path, "no free temporary file name in its folder");
}

// The bytes of one file of a set, as a producer.
OutputProducer bytes_of(std::string_view bytes) {
  return [bytes](const OutputSink& put) { put(bytes); };
}

// Runs `produce` into fd; the first write error's errno, or 0. A throwing producer is the
// caller's to clean up after.
int produce_into(int fd, const OutputProducer& produce) {
  int err = 0;
  produce([&](std::string_view bytes) {
    if (err == 0 && !write_all(fd, bytes)) err = errno != 0 ? errno : EIO;
  });
  return err;
}

// Writes the produced bytes to a temporary file beside the target and returns its path; the
// caller renames it. On failure the temporary file is removed and Error thrown.
std::string write_temp(const Target& t, const OutputProducer& produce) {
  std::string temp;
  const int fd = create_temp(t, &temp);
  int err = 0;
  try {
    err = produce_into(fd, produce);
  } catch (...) {
    ::close(fd);
    discard_temp(temp);
    throw;
  }
  bool ok = err == 0;
  if (ok && t.exists && fchmod(fd, t.mode) != 0) ok = false, err = errno;
  // Flushed before the rename, so a crash cannot leave an empty file under the target's name.
  if (ok && fsync(fd) != 0 && errno != EINVAL) ok = false, err = errno;
  if (::close(fd) != 0 && ok) ok = false, err = errno;
  if (!ok) {
    discard_temp(temp);
    cannot_write(t.path, std::strerror(err));
  }
  return temp;
}

// A device or a FIFO: opened without blocking (a FIFO nobody reads is an error, not a hang),
// then written in place.
void write_direct(const Target& t, const OutputProducer& produce) {
  const int fd = ::open(t.real.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    cannot_write(t.path, errno == ENXIO ? std::string("it is a named pipe that nobody reads")
                                        : std::string(std::strerror(errno)));
  }
  const int flags = fcntl(fd, F_GETFL);
  int err = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 ? 0 : errno;
  try {
    if (err == 0) err = produce_into(fd, produce);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) cannot_write(t.path, std::strerror(err));
}

}  // namespace

void check_output_path(const std::string& path, std::span<const std::string> inputs) {
  const Target t = resolve(path);
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (t.exists && fs::equivalent(t.real, input, ec)) {
      fail("{}: cannot write: it is the input file '{}'", path, input);
    }
  }
  if (t.direct) return;
  std::string temp;
  const int fd = create_temp(t, &temp);
  ::close(fd);
  discard_temp(temp);
}

void write_output_files(std::span<const OutputFile> files) {
  std::vector<Target> targets;
  for (const OutputFile& f : files) targets.push_back(resolve(f.path));
  std::vector<std::string> temps(files.size());
  try {
    for (size_t i = 0; i < files.size(); ++i) {
      if (!targets[i].direct) temps[i] = write_temp(targets[i], bytes_of(files[i].bytes));
    }
  } catch (const Error&) {
    for (const std::string& temp : temps) discard_temp(temp);
    throw;
  }
  // Devices and FIFOs next (they cannot be replaced): a failure there still renames nothing.
  try {
    for (size_t i = 0; i < files.size(); ++i) {
      if (targets[i].direct) write_direct(targets[i], bytes_of(files[i].bytes));
    }
  } catch (const Error&) {
    for (const std::string& temp : temps) discard_temp(temp);
    throw;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (targets[i].direct) {
      continue;
    } else if (std::rename(temps[i].c_str(), targets[i].real.c_str()) == 0) {
      forget_temp(temps[i]);
    } else {
      const int err = errno;
      for (size_t j = i; j < files.size(); ++j) discard_temp(temps[j]);
      cannot_write(targets[i].path, std::strerror(err));
    }
  }
}

void write_output_file(const std::string& path, std::string_view bytes) {
  const OutputFile file{path, bytes};
  write_output_files({&file, 1});
}

void write_output_file(const std::string& path, const OutputProducer& produce) {
  const Target t = resolve(path);
  if (t.direct) return write_direct(t, produce);
  const std::string temp = write_temp(t, produce);
  if (std::rename(temp.c_str(), t.real.c_str()) != 0) {
    const int err = errno;
    discard_temp(temp);
    cannot_write(t.path, std::strerror(err));
  }
  forget_temp(temp);
}

}  // namespace kvpack
