// The filters, tests, methods and global functions kvpack's chat templates offer: those the
// Llama 3, Qwen 2.5 / 3 and Gemma 2 / 3 templates use, and the common relatives a template
// author would reach for. Python's semantics throughout (strings by character, str.strip's
// whitespace, json.dumps for tojson as Hugging Face configures it).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>

#include "base/error.h"
#include "model/chat_template_ast.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

using jinja::Value;
using Kind = Value::Kind;
using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

// The argument at `i`, or keyword `name`, or `fallback`.
Value arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name,
          Value fallback = Value()) {
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

Value length(const Value& v) {
  switch (v.kind()) {
    case Kind::undefined:
      return Value(0);
    case Kind::string:
      return Value(static_cast<int64_t>(utf8_chars(v.str()).size()));
    case Kind::list:
      return Value(static_cast<int64_t>(v.list().size()));
    case Kind::dict:
    case Kind::ns:
      return Value(static_cast<int64_t>(v.items().size()));
    default:
      fail("object of type {} has no len()", v.repr());
  }
}

jinja::List to_list(const Value& v) {
  switch (v.kind()) {
    case Kind::undefined:
      return {};
    case Kind::list:
      return v.list();
    case Kind::string: {
      jinja::List l;
      for (std::string_view c : utf8_chars(v.str())) l.emplace_back(std::string(c));
      return l;
    }
    case Kind::dict:
    case Kind::ns: {
      jinja::List l;
      for (const auto& kv : v.items()) l.emplace_back(kv.first);
      return l;
    }
    default:
      fail("'{}' is not iterable", v.repr());
  }
}

Value items_of(const Value& v) {
  if (v.is_undefined()) return Value(jinja::List{});
  if (!v.is_mapping()) fail("items() needs a dict, got {}", v.repr());
  jinja::List l;
  for (const auto& [k, x] : v.items()) l.emplace_back(jinja::List{Value(k), x});
  return Value(std::move(l));
}

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

bool test_by_name(const std::string& name, const Value& v, const Args& args);

// select/reject(test, args...) over a sequence.
Value select(const Value& seq, const Args& args, bool keep) {
  if (args.empty()) {
    jinja::List out;
    for (const Value& x : to_list(seq)) {
      if (x.truthy() == keep) out.push_back(x);
    }
    return Value(std::move(out));
  }
  const std::string& test = need_string(args[0], "select/reject test name");
  const Args rest(args.begin() + 1, args.end());
  jinja::List out;
  for (const Value& x : to_list(seq)) {
    if (test_by_name(test, x, rest) == keep) out.push_back(x);
  }
  return Value(std::move(out));
}

Value join(const Value& seq, const Args& args, const Kwargs& kwargs) {
  const Value sep = arg(args, kwargs, 0, "d", Value(""));
  const Value attribute = arg(args, kwargs, 1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& x : to_list(seq)) {
    if (!first) out += sep.to_string();
    first = false;
    out += (attribute.is_string() ? x.get(attribute.str()) : x).to_string();
    check_text_size(out.size());
  }
  return Value(out);
}

bool test_by_name(const std::string& name, const Value& v, const Args& args) {
  const auto other = [&] {
    if (args.empty()) fail("test '{}' needs an argument", name);
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == Kind::integer;
  if (name == "float") return v.kind() == Kind::floating;
  if (name == "boolean") return v.kind() == Kind::boolean;
  if (name == "true") return v.kind() == Kind::boolean && v.as_bool();
  if (name == "false") return v.kind() == Kind::boolean && !v.as_bool();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_iterable();
  if (name == "sequence") return v.is_string() || v.kind() == Kind::list || v.is_mapping();
  if (name == "callable") return v.kind() == Kind::function;
  if (name == "odd" || name == "even") {
    if (v.kind() != Kind::integer) fail("test '{}' needs an integer, got {}", name, v.repr());
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value d = other();
    if (v.kind() != Kind::integer || d.kind() != Kind::integer || d.as_int() == 0) {
      fail("test 'divisibleby' needs integers, got {} and {}", v.repr(), d.repr());
    }
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    return jinja::equal(v, other());
  }
  if (name == "ne" || name == "!=") return !jinja::equal(v, other());
  if (name == "lt" || name == "<") return jinja::compare(v, other()) < 0;
  if (name == "le" || name == "<=") return jinja::compare(v, other()) <= 0;
  if (name == "gt" || name == ">") return jinja::compare(v, other()) > 0;
  if (name == "ge" || name == ">=") return jinja::compare(v, other()) >= 0;
  if (name == "in") {
    const Value seq = other();
    if (seq.is_string()) return v.is_string() && seq.str().find(v.str()) != std::string::npos;
    for (const Value& x : to_list(seq)) {
      if (jinja::equal(x, v)) return true;
    }
    return false;
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    const std::string mapped = map_chars(v.str(), name == "lower" ? ::tolower : ::toupper);
    return mapped == v.str() &&
           map_chars(v.str(), name == "lower" ? ::toupper : ::tolower) != v.str();
  }
  fail("unsupported test '{}'", name);
}

}  // namespace

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

Value apply_filter(const std::string& name, const Value& v, const Args& args,
                   const Kwargs& kwargs) {
  if (name == "default" || name == "d") {
    const bool boolean = arg(args, kwargs, 1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy()))
      return arg(args, kwargs, 0, "default_value", Value(""));
    return v;
  }
  if (name == "length" || name == "count") return length(v);
  if (name == "safe") return v;
  if (name == "string") return Value(v.to_string());
  if (name == "list") return Value(to_list(v));
  if (name == "items") return items_of(v);
  if (name == "join") return join(v, args, kwargs);
  if (name == "select" || name == "reject") return select(v, args, name == "select");
  if (name == "first" || name == "last") {
    const jinja::List l = to_list(v);
    if (l.empty()) return Value::undefined(fmt::format("{} of an empty sequence", name));
    return name == "first" ? l.front() : l.back();
  }
  if (name == "tojson") {
    for (const auto& [k, x] : kwargs) {
      if (k != "indent" && !(k == "ensure_ascii" && !x.truthy())) {
        fail("tojson: unsupported argument '{}'", k);
      }
    }
    const Value indent = arg(args, {}, 0, "indent");
    const Value kw = arg({}, kwargs, 0, "indent");
    const Value& ind = indent.is_undefined() ? kw : indent;
    if (v.is_undefined()) fail("{}", v.name().empty() ? "a value is undefined" : v.name());
    if (ind.kind() == Kind::integer && (ind.as_int() < 0 || ind.as_int() > 64)) {
      fail("tojson: indent {} is outside 0..64", ind.as_int());
    }
    return Value(v.to_json(ind.kind() == Kind::integer ? static_cast<int>(ind.as_int()) : -1));
  }
  if (name == "map") {
    const Value attribute = arg({}, kwargs, 0, "attribute");
    jinja::List out;
    for (const Value& x : to_list(v)) {
      if (attribute.is_string()) {
        out.push_back(x.get(attribute.str()));
      } else {
        const std::string& f = need_string(arg(args, {}, 0, "filter"), "map()");
        out.push_back(apply_filter(f, x, Args(args.begin() + 1, args.end()), {}));
      }
    }
    return Value(std::move(out));
  }
  if (name == "int" || name == "float" || name == "abs") {
    if (name == "abs") {
      if (v.kind() == Kind::integer) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
      return Value(std::abs(v.as_number()));
    }
    if (v.is_string()) {
      try {
        return name == "int" ? Value(static_cast<int64_t>(std::stoll(v.str())))
                             : Value(std::stod(v.str()));
      } catch (const std::exception&) {
        return arg(args, kwargs, 0, "default", name == "int" ? Value(0) : Value(0.0));
      }
    }
    if (!v.is_number() && v.kind() != Kind::boolean) return name == "int" ? Value(0) : Value(0.0);
    return name == "int" ? Value(static_cast<int64_t>(v.as_number())) : Value(v.as_number());
  }
  const bool string_filter = name == "trim" || name == "upper" || name == "lower" ||
                             name == "title" || name == "capitalize" || name == "replace";
  if (string_filter && !v.is_string()) {  // Jinja stringifies (Undefined is "")
    return apply_filter(name, Value(v.to_string()), args, kwargs);
  }
  if (v.is_string()) {
    if (name == "trim")
      return Value(python_strip(v.str(), true, true, arg(args, kwargs, 0, "chars")));
    if (name == "title") return Value(title_filter(v.str()));
    if (name == "upper" || name == "lower" || name == "capitalize") {
      return string_method(v.str(), name, {}, {});
    }
    if (name == "replace") return string_method(v.str(), name, args, kwargs);
  }
  fail("unsupported filter '{}'", name);
}

bool apply_test(const std::string& name, const Value& v, const Args& args) {
  return test_by_name(name, v, args);
}

Value call_method(const Value& v, const std::string& name, const Args& args, const Kwargs& kwargs) {
  if (v.is_string()) return string_method(v.str(), name, args, kwargs);
  if (v.is_mapping()) {
    if (name == "items") return items_of(v);
    if (name == "keys" || name == "values") {
      jinja::List l;
      for (const auto& [k, x] : v.items()) l.push_back(name == "keys" ? Value(k) : x);
      return Value(std::move(l));
    }
    if (name == "get") {
      const Value x = v.get(need_string(arg(args, kwargs, 0, "key"), "get()"));
      return x.is_undefined() ? arg(args, kwargs, 1, "default", Value::none()) : x;
    }
  }
  fail("unsupported method '{}' of {}", name, v.repr());
}

bool is_known_filter(std::string_view name) {
  static constexpr std::string_view kFilters[] = {
      "default", "d",      "length", "count", "safe",  "string", "list",       "items",
      "join",    "select", "reject", "first", "last",  "tojson", "map",        "int",
      "float",   "abs",    "trim",   "upper", "lower", "title",  "capitalize", "replace"};
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

bool is_known_test(std::string_view name) {
  static constexpr std::string_view kTests[] = {
      "defined", "undefined", "none",        "string",  "number",   "integer",  "float",
      "boolean", "true",      "false",       "mapping", "iterable", "sequence", "callable",
      "odd",     "even",      "divisibleby", "equalto", "eq",       "==",       "sameas",
      "ne",      "!=",        "lt",          "<",       "le",       "<=",       "gt",
      ">",       "ge",        ">=",          "in",      "lower",    "upper"};
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

const std::vector<std::string>& global_functions() {
  static const std::vector<std::string> kFunctions = {"raise_exception", "namespace", "range",
                                                      "strftime_now", "dict"};
  return kFunctions;
}

Value call_function(const std::string& name, const Args& args, const Kwargs& kwargs) {
  if (name == "raise_exception") {
    fail("the chat template raised an error: {}",
         args.empty() ? std::string() : args[0].to_string());
  }
  if (name == "namespace" || name == "dict") {
    jinja::Dict d;
    if (!args.empty()) {
      if (!args[0].is_mapping()) fail("{}() takes keyword arguments or a dict", name);
      d = args[0].items();
    }
    Value out = name == "namespace" ? Value::ns(std::move(d)) : Value::dict(std::move(d));
    for (const auto& [k, x] : kwargs) out.set(k, x);
    return out;
  }
  if (name == "range") {
    for (const Value& a : args) {
      if (a.kind() != Kind::integer) fail("range() needs integers, got {}", a.repr());
    }
    if (args.empty() || args.size() > 3) fail("range() takes 1 to 3 arguments");
    const int64_t start = args.size() > 1 ? args[0].as_int() : 0;
    const int64_t stop = args.size() > 1 ? args[1].as_int() : args[0].as_int();
    const int64_t step = args.size() > 2 ? args[2].as_int() : 1;
    if (step == 0) fail("range() step must not be zero");
    jinja::List l;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (static_cast<int64_t>(l.size()) >= kMaxTemplateItems) {
        fail("range() of more than {} items", kMaxTemplateItems);
      }
      l.emplace_back(i);
    }
    return Value(std::move(l));
  }
  if (name == "strftime_now") {
    const std::string& f = need_string(arg(args, kwargs, 0, "format"), "strftime_now()");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), f.c_str(), &local);
    return Value(std::string(buf, n));
  }
  fail("unsupported function '{}'", name);
}

}  // namespace kvpack::model
