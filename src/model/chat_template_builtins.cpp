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
using Args = TemplateArgs;
using Kwargs = TemplateKwargs;

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
