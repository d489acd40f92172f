// Python's operators on chat template values: arithmetic with 64-bit integers (overflow is an
// Error where Python would grow), string and list concatenation and repetition within the
// renderer's limits, comparisons, `in`, and slice indices.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "base/error.h"
#include "model/chat_template_ast.h"

namespace kvpack::model {
namespace {

using jinja::Value;
using Kind = Value::Kind;

// a op b on 64-bit integers, where Python's would be unbounded: overflow is an Error.
template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  if (op(a, b, &r)) fail("integer overflow (kvpack's templates use 64-bit integers)");
  return r;
}
constexpr auto kAdd = [](int64_t a, int64_t b, int64_t* r) {
  return __builtin_add_overflow(a, b, r);
};
constexpr auto kSub = [](int64_t a, int64_t b, int64_t* r) {
  return __builtin_sub_overflow(a, b, r);
};
constexpr auto kMul = [](int64_t a, int64_t b, int64_t* r) {
  return __builtin_mul_overflow(a, b, r);
};

}  // namespace

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  const bool ints = (a.kind() == Kind::integer || a.kind() == Kind::boolean) &&
                    (b.kind() == Kind::integer || b.kind() == Kind::boolean);
  const bool numbers =
      (a.is_number() || a.kind() == Kind::boolean) && (b.is_number() || b.kind() == Kind::boolean);
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.kind() == Kind::list && b.kind() == Kind::list) {
      if (static_cast<int64_t>(a.list().size() + b.list().size()) > kMaxTemplateItems) {
        fail("a list of more than {} items", kMaxTemplateItems);
      }
      jinja::List l = a.list();
      l.insert(l.end(), b.list().begin(), b.list().end());
      return Value(std::move(l));
    }
    if (ints) return Value(checked(kAdd, a.as_int(), b.as_int()));
    if (numbers) return Value(a.as_number() + b.as_number());
  } else if (op == "-") {
    if (ints) return Value(checked(kSub, a.as_int(), b.as_int()));
    if (numbers) return Value(a.as_number() - b.as_number());
  } else if (op == "*") {
    const Value* text = a.is_string() || a.kind() == Kind::list ? &a : &b;
    const Value* count = text == &a ? &b : &a;
    if ((text->is_string() || text->kind() == Kind::list) && count->kind() == Kind::integer) {
      const int64_t n = std::max<int64_t>(count->as_int(), 0);
      const auto size =
          static_cast<int64_t>(text->is_string() ? text->str().size() : text->list().size());
      if (n > 0 &&
          size > (text->is_string() ? static_cast<int64_t>(kMaxTemplateText) : kMaxTemplateItems) /
                     n) {
        fail("repeating {} items {} times is too large", size, n);
      }
      if (text->is_string()) {
        std::string s;
        for (int64_t i = 0; i < count->as_int(); ++i) s += text->str();
        return Value(std::move(s));
      }
      jinja::List l;
      for (int64_t i = 0; i < count->as_int(); ++i) {
        l.insert(l.end(), text->list().begin(), text->list().end());
      }
      return Value(std::move(l));
    }
    if (ints) return Value(checked(kMul, a.as_int(), b.as_int()));
    if (numbers) return Value(a.as_number() * b.as_number());
  } else if (numbers) {
    const double x = a.as_number();
    const double y = b.as_number();
    if ((op == "/" || op == "//" || op == "%") && y == 0) fail("division by zero");
    if (op == "/") return Value(x / y);
    if (op == "//" || op == "%") {
      if (ints) {
        const int64_t p = a.as_int();
        const int64_t q = b.as_int();
        if (p == std::numeric_limits<int64_t>::min() && q == -1) fail("integer overflow");
        int64_t div = p / q;
        int64_t mod = p % q;
        if (mod != 0 && ((mod < 0) != (q < 0))) {  // Python floors toward negative infinity
          --div;
          mod += q;
        }
        return Value(op == "//" ? div : mod);
      }
      const double div = std::floor(x / y);
      return Value(op == "//" ? div : x - div * y);
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < b.as_int(); ++i) {
          result = checked(kMul, result, a.as_int());
        }
        return Value(result);
      }
      return Value(std::pow(x, y));
    }
  }
  fail("unsupported operand types for {}: '{}' and '{}'", op, a.repr(), b.repr());
}

namespace {

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::undefined:
      return false;  // iterating Undefined gives nothing
    case Kind::string:
      if (!item.is_string()) fail("'in <string>' requires a string as left operand");
      return container.str().find(item.str()) != std::string::npos;
    case Kind::list:
      for (const Value& v : container.list()) {
        if (jinja::equal(v, item)) return true;
      }
      return false;
    case Kind::dict:
    case Kind::ns:
      return item.is_string() && !container.get(item.str()).is_undefined();
    default:
      fail("argument of type '{}' is not iterable", container.repr());
  }
}

}  // namespace

bool compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return jinja::equal(a, b);
  if (op == "!=") return !jinja::equal(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  const int c = jinja::compare(a, b);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

// Python's slice of a sequence of n items: the indices it selects.
std::vector<int64_t> slice_indices(int64_t n, const Value& start, const Value& stop,
                                   const Value& step_v) {
  const auto as_index = [](const Value& v, std::string_view what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (v.kind() != Kind::integer) fail("slice {} must be an integer", what);
    return v.as_int();
  };
  const int64_t step = as_index(step_v, "step").value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  const auto clamp = [&](std::optional<int64_t> i, int64_t dflt) {
    if (!i) return dflt;
    int64_t v = *i < 0 ? *i + n : *i;
    if (step > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  const int64_t lo = clamp(as_index(start, "start"), step > 0 ? 0 : n - 1);
  const int64_t hi = clamp(as_index(stop, "stop"), step > 0 ? n : -1);
  std::vector<int64_t> out;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) out.push_back(i);
  return out;
}

void undefined_error(const Value& v) {
  fail("{}", v.name().empty() ? std::string("a value is undefined") : v.name());
}

}  // namespace kvpack::model
