// Python's string operations for chat templates, on UTF-8 by character (a byte that is not
// valid UTF-8 counts as one): str methods, str.isspace(), str.strip(), str.split(), and the
// filters that are string operations (Jinja's title); plus the argument helpers every
// built-in uses.
#include <algorithm>
#include <cctype>

#include "base/error.h"
#include "model/chat_template_ast.h"
#include "model/utf8.h"

namespace kvpack::model {

using jinja::Value;
using Kind = Value::Kind;
using Args = TemplateArgs;
using Kwargs = TemplateKwargs;

// The argument at `i`, or keyword `name`, or `fallback`.
Value arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name, Value fallback) {
  if (i < args.size()) return args[i];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return v;
  }
  return fallback;
}

void check_arity(std::string_view what, const Args& args, size_t most) {
  if (args.size() > most) fail("{} takes at most {} arguments, got {}", what, most, args.size());
}

const std::string& need_string(const Value& v, std::string_view what) {
  if (v.is_undefined()) fail("{}", v.name().empty() ? "a value is undefined" : v.name());
  if (!v.is_string()) fail("{} needs a string, got {}", what, v.repr());
  return v.str();
}

std::string map_chars(const std::string& s, int (*f)(int)) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<uint8_t>(c) < 0x80) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  }
  return out;
}

namespace {

// Python's title(): a letter after a non-letter is upper case, other letters lower (ASCII).
std::string title_case(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (letter) c = static_cast<char>(prev_letter ? std::tolower(c) : std::toupper(c));
    prev_letter = letter;
  }
  return out;
}

}  // namespace

// Jinja's title filter (not str.title()): words start after whitespace, '-', '(', '{', '[' or
// '<'; each word's first character is upper case and the rest lower (ASCII letters).
std::string title_filter(const std::string& s) {
  std::string out = s;
  bool word_start = true;
  for (char& c : out) {
    const bool separator = std::isspace(static_cast<unsigned char>(c)) || c == '-' || c == '(' ||
                           c == '{' || c == '[' || c == '<';
    if (separator) {
      word_start = true;
      continue;
    }
    if (static_cast<uint8_t>(c) < 0x80) {
      c = static_cast<char>(word_start ? std::toupper(c) : std::tolower(c));
    }
    word_start = false;
  }
  return out;
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  for (size_t at = 0; at < s.size();) {
    const size_t n = utf8_char_length(s, at);
    out.push_back(s.substr(at, n));
    at += n;
  }
  return out;
}

// Python's str.isspace() characters.
bool is_python_space(std::string_view ch) {
  if (ch.size() == 1) {
    const auto c = static_cast<uint8_t>(ch[0]);
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  }
  const int32_t cp = utf8_code_point(ch, 0);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string python_strip(std::string_view s, bool left, bool right, const Value& chars) {
  const std::vector<std::string_view> cs = utf8_chars(s);
  std::vector<std::string_view> set;
  const bool custom = !chars.is_undefined() && !chars.is_none();
  if (custom) set = utf8_chars(need_string(chars, "strip()"));
  const auto strip = [&](std::string_view c) {
    return custom ? std::find(set.begin(), set.end(), c) != set.end() : is_python_space(c);
  };
  size_t lo = 0;
  size_t hi = cs.size();
  while (left && lo < hi && strip(cs[lo])) ++lo;
  while (right && hi > lo && strip(cs[hi - 1])) --hi;
  std::string out;
  for (size_t i = lo; i < hi; ++i) out += cs[i];
  return out;
}

namespace {

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  if (from.empty()) return s;  // Python inserts `to` between characters; not needed here
  std::string out;
  size_t at = 0;
  for (size_t hit; count != 0 && (hit = s.find(from, at)) != std::string::npos; --count) {
    out.append(s, at, hit - at);
    out += to;
    check_text_size(out.size());
    at = hit + from.size();
  }
  return out + s.substr(at);
}

// str.split(sep=None, maxsplit=-1): without sep, runs of whitespace split and ends are dropped.
Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  jinja::List out;
  if (sep.is_undefined() || sep.is_none()) {
    const std::vector<std::string_view> chars = utf8_chars(s);
    size_t i = 0;
    for (;;) {
      while (i < chars.size() && is_python_space(chars[i])) ++i;
      if (i == chars.size()) break;
      std::string word;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        // After maxsplit splits the rest is one word, without its trailing whitespace.
        for (; i < chars.size(); ++i) word += chars[i];
        out.emplace_back(python_strip(word, false, true, Value()));
        break;
      }
      for (; i < chars.size() && !is_python_space(chars[i]); ++i) word += chars[i];
      out.emplace_back(std::move(word));
    }
    return Value(std::move(out));
  }
  const std::string& d = need_string(sep, "split()");
  if (d.empty()) fail("split(): empty separator");
  size_t at = 0;
  for (size_t hit; (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) &&
                   (hit = s.find(d, at)) != std::string::npos;) {
    out.emplace_back(s.substr(at, hit - at));
    at = hit + d.size();
  }
  out.emplace_back(s.substr(at));
  return Value(std::move(out));
}

}  // namespace

Value string_method(const std::string& s, const std::string& name, const Args& args,
                    const Kwargs& kwargs) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    check_arity(name, args, 1);
    return Value(
        python_strip(s, name != "rstrip", name != "lstrip", arg(args, kwargs, 0, "chars")));
  }
  if (name == "split") {
    const Value max = arg(args, kwargs, 1, "maxsplit", Value(-1));
    return split(s, arg(args, kwargs, 0, "sep"), max.as_int());
  }
  if (name == "startswith" || name == "endswith") {
    const Value p = arg(args, kwargs, 0, "prefix");
    const jinja::List options = p.kind() == Kind::list ? p.list() : jinja::List{p};
    for (const Value& o : options) {
      const std::string& x = need_string(o, name);
      const bool hit = name == "startswith" ? s.compare(0, x.size(), x) == 0
                                            : s.size() >= x.size() &&
                                                  s.compare(s.size() - x.size(), x.size(), x) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "upper") return Value(map_chars(s, ::toupper));
  if (name == "lower") return Value(map_chars(s, ::tolower));
  if (name == "title") return Value(title_case(s));
  if (name == "capitalize") {
    std::string out = map_chars(s, ::tolower);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return Value(out);
  }
  if (name == "replace") {
    return Value(replace_all(s, need_string(arg(args, kwargs, 0, "old"), "replace()"),
                             need_string(arg(args, kwargs, 1, "new"), "replace()"),
                             arg(args, kwargs, 2, "count", Value(-1)).as_int()));
  }
  if (name == "find" || name == "count") {
    const std::string& x = need_string(arg(args, kwargs, 0, "sub"), name);
    if (name == "count") {
      if (x.empty()) return Value(static_cast<int64_t>(utf8_chars(s).size()) + 1);
      int64_t n = 0;
      for (size_t at = s.find(x); at != std::string::npos; at = s.find(x, at + x.size())) ++n;
      return Value(n);
    }
    const size_t at = s.find(x);
    return Value(at == std::string::npos
                     ? int64_t{-1}
                     : static_cast<int64_t>(utf8_chars(std::string_view(s).substr(0, at)).size()));
  }
  fail("unsupported string method '{}'", name);
}

}  // namespace kvpack::model
