// Chat template expression parser (internal to chat_template_*.cpp): Jinja2's grammar and
// operator precedence (lowest first): `x if c else y`, or, and, not, comparisons and `in`, + -,
// ~, * / // %, **, unary - +, then postfix (.attr, [item], [a:b:c], calls), then filters (|f)
// and tests (is [not] t), which bind tighter than any operator. One parser reads the tokens of
// one tag; the statement parser (chat_template_parser.cpp) drives it.
#pragma once

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "model/chat_template_ast.h"

namespace kvpack::model {

inline constexpr std::array<std::string_view, 6> kCompareOps = {"==", "!=", "<", ">", "<=", ">="};

class ExprParser {
  using TK = TemplateToken::Kind;

 public:
  ExprParser(const std::vector<TemplateToken>& tokens, int line) : t_(tokens), line_(line) {}

  [[noreturn]] void error(std::string_view what) const { fail("line {}: {}", line_, what); }

  const TemplateToken& peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, t_.size() - 1);  // the last token is `end`
    return t_[i];
  }
  bool at_end() const { return peek().kind == TK::end; }
  bool is_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == TK::op && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == TK::name && peek(ahead).text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    ++pos_;
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    ++pos_;
    return true;
  }
  std::string describe(const TemplateToken& t) const {
    switch (t.kind) {
      case TK::end:
        return "the end of the tag";
      case TK::string:
        return fmt::format("string {:?}", t.text);
      default:
        return fmt::format("'{}'", t.text);
    }
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) error(fmt::format("expected '{}', found {}", op, describe(peek())));
  }
  std::string expect_name() {
    if (peek().kind != TK::name) error(fmt::format("expected a name, found {}", describe(peek())));
    return t_[pos_++].text;
  }
  void expect_end() {
    if (!at_end()) error(fmt::format("unexpected {}", describe(peek())));
  }

  ExprPtr make(Expr::Kind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    ExprPtr e = make(Expr::Kind::binary);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  // with_condition: whether `x if c else y` is allowed (not in a for loop's iterable, where
  // `if` starts the loop filter).
  ExprPtr expression(bool with_condition = true) {
    const Nest nest(*this);
    ExprPtr e = or_expr();
    while (with_condition && skip_name("if")) {
      ExprPtr t = make(Expr::Kind::ternary);
      t->a = or_expr();  // condition
      t->b = std::move(e);
      if (skip_name("else")) t->c = expression();
      e = std::move(t);
    }
    return e;
  }

 private:
  // Bounds the parser's recursion: (((((x))))) or - - - - x nested past the limit is an error,
  // not a stack overflow.
  struct Nest {
    ExprParser& p;
    explicit Nest(ExprParser& parser) : p(parser) {
      if (++p.depth_ > kMaxTemplateNesting) {
        p.error(fmt::format("an expression nested more than {} deep", kMaxTemplateNesting));
      }
    }
    ~Nest() { --p.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
  };

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (skip_name("or")) e = binary("or", std::move(e), and_expr());
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (skip_name("and")) e = binary("and", std::move(e), not_expr());
    return e;
  }
  ExprPtr not_expr() {
    const Nest nest(*this);
    if (is_name("not") && !is_name("in", 1)) {
      ++pos_;
      ExprPtr e = make(Expr::Kind::unary);
      e->name = "not";
      e->a = not_expr();
      return e;
    }
    return compare();
  }
  // Comparisons chain as in Python: a < b < c is a < b and b < c (b evaluated once).
  ExprPtr compare() {
    ExprPtr first = additive();
    ExprPtr e;
    for (;;) {
      std::string op;
      if (peek().kind == TK::op &&
          std::find(kCompareOps.begin(), kCompareOps.end(), peek().text) != kCompareOps.end()) {
        op = t_[pos_++].text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        pos_ += 2;
        op = "not in";
      } else {
        break;
      }
      if (!e) {
        e = make(Expr::Kind::compare);
        e->a = std::move(first);
      }
      e->kwargs.emplace_back(std::move(op), additive());
    }
    return e ? std::move(e) : std::move(first);
  }
  ExprPtr additive() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[pos_++].text;
      e = binary(op, std::move(e), concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = multiplicative();
    while (skip_op("~")) e = binary("~", std::move(e), multiplicative());
    return e;
  }
  ExprPtr multiplicative() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[pos_++].text;
      e = binary(op, std::move(e), power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (skip_op("**")) e = binary("**", std::move(e), unary(true));
    return e;
  }
  ExprPtr unary(bool with_filter) {
    const Nest nest(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::unary);
      e->name = t_[pos_++].text;
      e->a = unary(false);
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    return with_filter ? filters(std::move(e)) : std::move(e);
  }
  ExprPtr primary();
  ExprPtr postfix(ExprPtr e);
  ExprPtr subscript(ExprPtr e);
  ExprPtr filters(ExprPtr e);
  ExprPtr call(ExprPtr callee);
  void call_args(Expr& e);

  const std::vector<TemplateToken>& t_;
  size_t pos_ = 0;
  int line_;
  int depth_ = 0;
};

}  // namespace kvpack::model
