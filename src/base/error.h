// Errors for bad user input and files. Broken internal invariants use KVPACK_ASSERT instead.
#pragma once

#include <fmt/format.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace kvpack {

// Thrown for anything a user can cause: an unknown format name, a malformed file, a budget that
// cannot hold the weights, a full cache. The message names the input and what was expected; the
// CLI prints it as "kvpack: error: <message>" and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message)
      : std::runtime_error(message), message_(std::make_shared<const std::string>(message)) {}
  // The whole message. what() stops at the first NUL byte, and a message that quotes a file's
  // text (a GGUF key, a model name) can hold one; print this (through terminal_safe) instead.
  const std::string& message() const { return *message_; }

 private:
  std::shared_ptr<const std::string> message_;  // shared: copying an exception must not throw
};

// Formats the message with fmt and throws kvpack::Error.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

namespace detail {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line,
                                const std::string& msg);
}  // namespace detail

}  // namespace kvpack

// Checks an internal invariant in every build type (these guard memory safety, so they stay on
// in Release). The message says what broke; it is not meant for users.
#define KVPACK_ASSERT(cond, ...)                                                               \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::kvpack::detail::assert_failed(#cond, __FILE__, __LINE__, fmt::format("" __VA_ARGS__)); \
  } while (0)

// Checks an invariant only in Debug builds (hot paths).
#ifdef NDEBUG
#define KVPACK_DASSERT(cond, ...) \
  do {                            \
  } while (0)
#else
#define KVPACK_DASSERT(cond, ...) KVPACK_ASSERT(cond, __VA_ARGS__)
#endif
