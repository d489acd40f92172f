// UTF-8 helpers for the tokenizers. Input text is arbitrary bytes: a byte that does not start a
// well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) is
// treated as a one-byte "character" of its own, so every function here is total and deterministic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvpack::model {

// Length in bytes of the well-formed UTF-8 sequence starting at s[pos], or 1 when s[pos] does not
// start one (an invalid byte, or a sequence cut short by the end of s). Requires pos < s.size().
size_t utf8_char_length(std::string_view s, size_t pos);

// The code point of the well-formed sequence at s[pos] (see utf8_char_length), or -1 when the
// byte there is invalid.
int32_t utf8_code_point(std::string_view s, size_t pos);

// Appends the UTF-8 encoding of `cp` (must be <= 0x10FFFF and not a surrogate).
void utf8_append(std::string& out, uint32_t cp);

// Number of bytes at the end of s that form the beginning of a well-formed multi-byte sequence
// still waiting for its continuation bytes (0..3). A stream decoder holds these bytes back.
size_t utf8_incomplete_tail(std::string_view s);

}  // namespace kvpack::model
