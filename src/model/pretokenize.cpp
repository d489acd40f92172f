#include "model/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

// The upstream patterns. Llama 3 and Qwen 2 write the contractions as (?i:'s|...); they are
// spelled out with explicit case classes here (as llama.cpp does) so that Unicode case folding
// cannot match e.g. U+017F LATIN SMALL LETTER LONG S as 's'. GPT-2 ends with \s+ as in the
// upstream pattern; it only catches a lone whitespace before a non-space that no other branch
// takes (e.g. "\tHello"), which would otherwise become a piece of its own anyway.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp's whitespace is the Unicode White_Space property; PCRE2's \s in UCP mode also takes
// U+180E MONGOLIAN VOWEL SEPARATOR (its \h list predates Unicode 6.3). So the patterns' \s and
// \S are spelled out with this set.
constexpr std::string_view kWhiteSpace =
    R"(\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// `pattern` with \s and \S replaced by kWhiteSpace (inside a character class, its contents).
std::string with_white_space(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[++i];
      if (n == 's' && in_class) {
        out.append(kWhiteSpace);
      } else if (n == 's' || n == 'S') {
        KVPACK_ASSERT(!in_class, "\\S inside a character class");
        out.append(n == 's' ? "[" : "[^").append(kWhiteSpace).append("]");
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[') in_class = true;
    if (c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
using Code = std::unique_ptr<pcre2_code, CodeDeleter>;

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

Code compile(const char* upstream) {
  const std::string pattern = with_white_space(upstream);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // MATCH_INVALID_UTF: invalid UTF-8 in the subject is skipped over instead of failing the match.
  Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
                          nullptr));
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    KVPACK_ASSERT(false, "pre-tokenizer pattern does not compile at {}: {}", offset,
                  reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // optional: the interpreter is the fallback
  return code;
}

const pcre2_code* pattern_for(PreTokenizer pre) {
  // Compiled once, then shared read-only by every thread (each match has its own match data).
  static const Code gpt2 = compile(kGpt2Pattern);
  static const Code llama3 = compile(kLlama3Pattern);
  static const Code qwen2 = compile(kQwen2Pattern);
  switch (pre) {
    case PreTokenizer::gpt2:
      return gpt2.get();
    case PreTokenizer::llama3:
      return llama3.get();
    case PreTokenizer::qwen2:
      return qwen2.get();
    case PreTokenizer::none:
      break;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string_view> pre_tokenize(PreTokenizer pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  const pcre2_code* code = pattern_for(pre);
  if (code == nullptr) {
    pieces.push_back(text);
    return pieces;
  }

  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(code, nullptr));
  KVPACK_ASSERT(match != nullptr, "out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());

  size_t done = 0;  // text[0, done) is already in pieces
  while (done < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), done, 0, match.get(), nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // A JIT stack or resource limit on a pathological input: retry interpreted, and if that
      // also gives up, take one character as a piece so the result stays deterministic.
      rc = pcre2_match(code, subject, text.size(), done, PCRE2_NO_JIT, match.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    size_t start = done;
    size_t end = done + utf8_char_length(text, done);
    if (rc >= 0) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
      start = ov[0];
      end = ov[1];
      if (end <= start) {  // none of the patterns matches "", but never loop on one
        if (start >= text.size()) break;
        end = start + utf8_char_length(text, start);
      }
    }
    if (start > done) pieces.push_back(text.substr(done, start - done));  // skipped invalid bytes
    pieces.push_back(text.substr(start, end - start));
    done = end;
  }
  if (done < text.size()) pieces.push_back(text.substr(done));
  return pieces;
}

}  // namespace kvpack::model
