// Text from files and the command line, made safe for a terminal. A GGUF key, a model name, a
// path or a generated token can hold escape sequences that clear the screen, move the cursor or
// forge an "error" line; every such string goes through terminal_safe() before it is printed.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace kvpack {

// `s` with everything that could drive a terminal written as a visible escape: C0 controls
// and DEL as \n, \t, \r or \xNN (NUL included, so nothing is cut at it), bytes that are not
// UTF-8 as \xNN, C1 controls (U+0080..U+009F) and the bidirectional overrides and isolates
// (U+202A..U+202E, U+2066..U+2069, which reorder what follows them) as \u{NNNN}. Other UTF-8
// text, backslashes included, is kept as it is.
std::string terminal_safe(std::string_view s);

// As terminal_safe, but newlines and tabs stay as they are: for multi-line text that is the
// product itself (a prompt and its continuation on a terminal).
std::string terminal_safe_text(std::string_view s);

// Length of the well-formed UTF-8 sequence at the start of `s` (1 to 4), 0 when it is not one
// (a stray continuation byte, an overlong form, a surrogate, a code point past U+10FFFF or a
// truncated sequence). `code_point` receives its value.
size_t utf8_sequence(std::string_view s, uint32_t* code_point);

// Writes "kvpack: error: <message>\n" to stderr: the whole message on one line, made safe.
void print_error(std::string_view message);

// Writes "kvpack: warning: <text>\n" to stderr, made safe (paths and model names in warnings
// come from the user and from files).
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  const std::string line =
      "kvpack: warning: " + terminal_safe(fmt::format(f, std::forward<Args>(args)...)) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace kvpack
