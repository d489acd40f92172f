#include "model/utf8.h"

#include "base/error.h"

namespace kvpack::model {
namespace {

// What a lead byte promises: the sequence length and the allowed range of the second byte
// (narrower than 80..BF for E0, ED, F0 and F4, which is how overlongs, surrogates and code points
// above U+10FFFF are excluded). length 0: not a lead byte.
struct Lead {
  int length;
  uint8_t lo;
  uint8_t hi;
};

Lead lead_of(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

bool is_continuation(uint8_t b) {
  return (b & 0xC0) == 0x80;
}

// True when s[pos + 1 .. pos + n) are the continuation bytes `lead` allows.
bool continuation_ok(std::string_view s, size_t pos, const Lead& lead, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if (i == 1 ? (b < lead.lo || b > lead.hi) : !is_continuation(b)) return false;
  }
  return true;
}

}  // namespace

size_t utf8_char_length(std::string_view s, size_t pos) {
  KVPACK_DASSERT(pos < s.size());
  const Lead lead = lead_of(static_cast<uint8_t>(s[pos]));
  if (lead.length <= 1) return 1;
  const auto n = static_cast<size_t>(lead.length);
  if (pos + n > s.size() || !continuation_ok(s, pos, lead, n)) return 1;
  return n;
}

int32_t utf8_code_point(std::string_view s, size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  const size_t n = utf8_char_length(s, pos);
  if (n == 1) return b0 < 0x80 ? b0 : -1;
  static constexpr uint8_t kLeadMask[5] = {0, 0, 0x1F, 0x0F, 0x07};
  int32_t cp = b0 & kLeadMask[n];
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(s[pos + i]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
  KVPACK_DASSERT(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF), "cp {}", cp);
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t utf8_incomplete_tail(std::string_view s) {
  // Walk back over at most three bytes to the last non-continuation byte; the tail is incomplete
  // when that byte leads a sequence longer than what follows it and what follows is allowed.
  for (size_t k = 1; k <= 3 && k <= s.size(); ++k) {
    const size_t pos = s.size() - k;
    const auto b = static_cast<uint8_t>(s[pos]);
    if (is_continuation(b)) continue;
    const Lead lead = lead_of(b);
    if (lead.length > static_cast<int>(k) && continuation_ok(s, pos, lead, k)) return k;
    return 0;
  }
  return 0;
}

}  // namespace kvpack::model
