// jinja::Value: Python's semantics for the values a chat template handles (truthiness, str(),
// repr(), ==, <, json.dumps), so output matches what Jinja2 prints byte for byte.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_set>
#include <vector>

#include "base/error.h"
#include "model/chat_template.h"
#include "model/chat_template_ast.h"
#include "model/utf8.h"

namespace kvpack::model::jinja {
namespace {

// Values nest at most this deep when printed, serialized or compared: a namespace can be made
// to contain itself (`set ns.me = ns`), and a template is untrusted input.
constexpr int kMaxDepth = 64;

void check_depth(int depth) {
  if (depth > kMaxDepth) {
    fail("a value nested more than {} levels deep (or containing itself)", kMaxDepth);
  }
}

std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::undefined:
      return "Undefined";
    case Value::Kind::none:
      return "NoneType";
    case Value::Kind::boolean:
      return "bool";
    case Value::Kind::integer:
      return "int";
    case Value::Kind::floating:
      return "float";
    case Value::Kind::string:
      return "str";
    case Value::Kind::list:
      return "list";
    case Value::Kind::dict:
      return "dict";
    case Value::Kind::ns:
      return "Namespace";
    case Value::Kind::function:
      return "function";
  }
  return "?";
}

// Python's repr(float): the shortest digits that round-trip, in fixed notation for exponents
// -4 <= e < 16 (with ".0" when integral), else d.ddde+XX.
std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // "-1.2345e+05"
  const size_t e_at = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e_at; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  const int exp = std::stoi(sci.substr(e_at + 1));
  std::string out = negative ? "-" : "";
  const auto point = static_cast<size_t>(exp) + 1;  // digits before the decimal point
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out.append("0.").append(static_cast<size_t>(-exp - 1), '0').append(digits);
    } else if (point >= digits.size()) {
      out.append(digits).append(point - digits.size(), '0').append(".0");
    } else {
      out.append(digits, 0, point).append(1, '.').append(digits, point);
    }
    return out;
  }
  out.append(digits, 0, 1);
  if (digits.size() > 1) out.append(1, '.').append(digits, 1);
  return out + fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
}

// Python's repr(str): single quotes unless the text has ' and no ".
std::string string_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char quote = dq ? '"' : '\'';
  std::string out(1, quote);
  for (size_t at = 0; at < s.size();) {
    const size_t n = utf8_char_length(s, at);
    const int32_t cp = utf8_code_point(s, at);
    const char c = s[at];
    if (c == '\\' || c == quote) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (cp < 0) {
      out += fmt::format("\\x{:02x}", static_cast<uint8_t>(c));  // not text: show the byte
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) {
      out += fmt::format("\\x{:02x}", cp);
    } else if (cp == 0x2028 || cp == 0x2029) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out.append(s, at, n);
    }
    at += n;
  }
  return out + quote;
}

void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<uint8_t>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void json_value(const Value& v, int indent, int depth, std::string& out) {
  check_depth(depth);
  check_text_size(out.size());
  const auto newline = [&](int d) {
    if (indent >= 0) out += '\n' + std::string(static_cast<size_t>(indent * d), ' ');
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::none:
      out += "null";
      return;
    case Value::Kind::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::integer:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::floating: {
      const double f = v.as_number();
      if (std::isnan(f)) {
        out += "NaN";
      } else if (std::isinf(f)) {
        out += f < 0 ? "-Infinity" : "Infinity";
      } else {
        out += float_repr(f);
      }
      return;
    }
    case Value::Kind::string:
      json_string(v.str(), out);
      return;
    case Value::Kind::list:
      if (v.list().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        json_value(v.list()[i], indent, depth + 1, out);
      }
      newline(depth);
      out += ']';
      return;
    case Value::Kind::dict:
    case Value::Kind::ns:
      if (v.items().empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        json_string(v.items()[i].first, out);
        out += ": ";
        json_value(v.items()[i].second, indent, depth + 1, out);
      }
      newline(depth);
      out += '}';
      return;
    default:
      fail("tojson: Object of type {} is not JSON serializable", kind_name(v.kind()));
  }
}

std::string repr_at(const Value& v, int depth) {
  check_depth(depth);
  switch (v.kind()) {
    case Value::Kind::undefined:
      return "";
    case Value::Kind::none:
      return "None";
    case Value::Kind::boolean:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::integer:
      return std::to_string(v.as_int());
    case Value::Kind::floating:
      return float_repr(v.as_number());
    case Value::Kind::string:
      return string_repr(v.str());
    case Value::Kind::list: {
      std::string out = "[";
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i > 0) out += ", ";
        out += repr_at(v.list()[i], depth + 1);
        check_text_size(out.size());
      }
      return out + "]";
    }
    case Value::Kind::dict:
    case Value::Kind::ns: {
      const bool ns = v.kind() == Value::Kind::ns;
      std::string out = ns ? "<Namespace {" : "{";
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0) out += ", ";
        out += string_repr(v.items()[i].first);
        out += ": ";
        out += repr_at(v.items()[i].second, depth + 1);
        check_text_size(out.size());
      }
      return out + (ns ? "}>" : "}");
    }
    case Value::Kind::function:
      return "<function " + v.name() + ">";
  }
  return "";
}

bool equal_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  using K = Value::Kind;
  const bool numeric_a = a.is_number() || a.kind() == K::boolean;
  const bool numeric_b = b.is_number() || b.kind() == K::boolean;
  if (numeric_a && numeric_b) {
    if (a.kind() != K::floating && b.kind() != K::floating) return a.as_int() == b.as_int();
    return a.as_number() == b.as_number();
  }
  if (a.is_mapping() && b.is_mapping()) {
    if (a.items().size() != b.items().size()) return false;
    return std::all_of(a.items().begin(), a.items().end(), [&](const auto& kv) {
      const Value other = b.get(kv.first);
      return !other.is_undefined() && equal_at(kv.second, other, depth + 1);
    });
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::undefined:
    case K::none:
      return true;
    case K::string:
      return a.str() == b.str();
    case K::list:
      return std::equal(a.list().begin(), a.list().end(), b.list().begin(), b.list().end(),
                        [&](const Value& x, const Value& y) { return equal_at(x, y, depth + 1); });
    case K::function:
      return a.name() == b.name();
    default:
      return false;
  }
}

}  // namespace

Value::Value(std::string s)
    : kind_(Kind::string), text_(std::make_shared<const std::string>(std::move(s))) {
  check_text_size(text_->size());
}

Value::Value(List items) : kind_(Kind::list), list_(std::make_shared<List>(std::move(items))) {}

Value Value::none() {
  Value v;
  v.kind_ = Kind::none;
  return v;
}

Value Value::undefined(std::string name) {
  Value v;
  v.text_ = std::make_shared<const std::string>(std::move(name));
  return v;
}

Value Value::dict(Dict items) {
  Value v;
  v.kind_ = Kind::dict;
  v.dict_ = std::make_shared<Dict>(std::move(items));
  return v;
}

Value Value::ns(Dict items) {
  Value v = dict(std::move(items));
  v.kind_ = Kind::ns;
  return v;
}

Value Value::function(std::string name) {
  Value v;
  v.kind_ = Kind::function;
  v.text_ = std::make_shared<const std::string>(std::move(name));
  return v;
}

bool Value::is_iterable() const {
  return kind_ == Kind::string || kind_ == Kind::list || is_mapping();
}

double Value::as_number() const {
  return kind_ == Kind::floating ? float_ : static_cast<double>(int_);
}

const std::string& Value::str() const {
  KVPACK_ASSERT(kind_ == Kind::string, "jinja value is a {}, not a str", kind_name(kind_));
  return *text_;
}

const std::string& Value::name() const {
  static const std::string empty;
  return kind_ == Kind::string || !text_ ? empty : *text_;
}

const List& Value::list() const {
  KVPACK_ASSERT(kind_ == Kind::list, "jinja value is a {}, not a list", kind_name(kind_));
  return *list_;
}

const Dict& Value::items() const {
  KVPACK_ASSERT(is_mapping(), "jinja value is a {}, not a dict", kind_name(kind_));
  return *dict_;
}

bool Value::contains(const Value& m) const {
  if (!m.is_mapping()) return false;
  // Depth-first over distinct containers (a list built as [x, x] twenty times over shares its
  // parts: visiting each once keeps the walk linear), on an explicit stack: a value may be
  // nested deeper than the call stack allows.
  std::vector<const Value*> todo{this};
  std::unordered_set<const void*> seen;
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (v->is_mapping()) {
      if (v->dict_ == m.dict_) return true;
      if (!seen.insert(v->dict_.get()).second) continue;
      for (const auto& item : *v->dict_) todo.push_back(&item.second);
    } else if (v->kind_ == Kind::list) {
      if (!seen.insert(v->list_.get()).second) continue;
      for (const auto& item : *v->list_) todo.push_back(&item);
    }
  }
  return false;
}

void Value::set(const std::string& key, Value v) {
  KVPACK_ASSERT(is_mapping(), "jinja value is a {}, not a dict", kind_name(kind_));
  if (v.contains(*this)) fail("cannot set '{}': a namespace containing itself", key);
  for (auto& [k, old] : *dict_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  dict_->emplace_back(key, std::move(v));
}

Value Value::get(std::string_view key) const {
  if (is_mapping()) {
    for (const auto& [k, v] : *dict_) {
      if (k == key) return v;
    }
  }
  return undefined(std::string(key));
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::undefined:
    case Kind::none:
      return false;
    case Kind::boolean:
    case Kind::integer:
      return int_ != 0;
    case Kind::floating:
      return float_ != 0;
    case Kind::string:
      return !text_->empty();
    case Kind::list:
      return !list_->empty();
    case Kind::dict:
      return !dict_->empty();
    case Kind::ns:
    case Kind::function:
      return true;
  }
  return false;
}

std::string Value::to_string() const {
  switch (kind_) {
    case Kind::undefined:
      return "";
    case Kind::string:
      return *text_;
    default:
      return repr();
  }
}

std::string Value::repr() const {
  return repr_at(*this, 0);
}

std::string Value::to_json(int indent) const {
  std::string out;
  json_value(*this, indent, 0, out);
  return out;
}

bool equal(const Value& a, const Value& b) {
  return equal_at(a, b, 0);
}

int compare(const Value& a, const Value& b) {
  using K = Value::Kind;
  const bool numeric_a = a.is_number() || a.kind() == K::boolean;
  const bool numeric_b = b.is_number() || b.kind() == K::boolean;
  if (numeric_a && numeric_b) {
    if (a.kind() != K::floating && b.kind() != K::floating) {
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
    return a.as_number() < b.as_number() ? -1 : a.as_number() > b.as_number() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.kind() == K::list && b.kind() == K::list) {
    const size_t n = std::min(a.list().size(), b.list().size());
    for (size_t i = 0; i < n; ++i) {
      if (!equal(a.list()[i], b.list()[i])) return compare(a.list()[i], b.list()[i]);
    }
    return a.list().size() < b.list().size() ? -1 : a.list().size() > b.list().size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '{}' and '{}'", kind_name(a.kind()),
       kind_name(b.kind()));
}

}  // namespace kvpack::model::jinja

namespace kvpack::model {

void check_text_size(size_t bytes) {
  if (bytes > kMaxTemplateText) {
    fail("the chat template made a string of more than {} MiB", kMaxTemplateText >> 20);
  }
}

}  // namespace kvpack::model
