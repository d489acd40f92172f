// Chat template expression parser: the parts of ExprParser that are not inline.
#include <set>

#include "model/chat_template_expr.h"

namespace kvpack::model {
namespace {

using TK = TemplateToken::Kind;

// Names that cannot start a bare test argument (`x is divisibleby 3` takes one).
bool is_keyword(std::string_view s) {
  static const std::set<std::string_view> kKeywords = {"and", "or",   "not",  "in",       "is",
                                                       "if",  "else", "elif", "recursive"};
  return kKeywords.count(s) != 0;
}

}  // namespace

ExprPtr ExprParser::primary() {
  const TemplateToken& t = peek();
  ExprPtr e = make(Expr::Kind::literal);
  switch (t.kind) {
    case TK::string: {
      std::string s;
      while (peek().kind == TK::string) s += t_[pos_++].text;  // 'a' 'b' is 'ab'
      e->value = jinja::Value(std::move(s));
      return e;
    }
    case TK::integer:
      e->value = jinja::Value(t.integer);
      ++pos_;
      return e;
    case TK::floating:
      e->value = jinja::Value(t.floating);
      ++pos_;
      return e;
    case TK::name:
      ++pos_;
      if (t.text == "true" || t.text == "True") {
        e->value = jinja::Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = jinja::Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = jinja::Value::none();
      } else {
        e->kind = Expr::Kind::name;
        e->name = t.text;
      }
      return e;
    case TK::op:
      break;
    case TK::end:
      error("expected an expression, found the end of the tag");
  }
  if (skip_op("(")) {  // parentheses; a tuple (a, b) becomes a list
    ExprPtr inner = expression();
    if (!is_op(",")) {
      expect_op(")");
      return inner;
    }
    e->kind = Expr::Kind::list;
    e->args.push_back(std::move(inner));
    while (skip_op(",") && !is_op(")")) e->args.push_back(expression());
    expect_op(")");
    return e;
  }
  if (skip_op("[")) {
    e->kind = Expr::Kind::list;
    while (!is_op("]")) {
      e->args.push_back(expression());
      if (!skip_op(",")) break;
    }
    expect_op("]");
    return e;
  }
  if (skip_op("{")) {
    e->kind = Expr::Kind::dict;
    while (!is_op("}")) {
      if (peek().kind != TK::string) error("dict literal keys must be string literals");
      std::string key = t_[pos_++].text;
      expect_op(":");
      e->kwargs.emplace_back(std::move(key), expression());
      if (!skip_op(",")) break;
    }
    expect_op("}");
    return e;
  }
  error(fmt::format("expected an expression, found {}", describe(t)));
}

ExprPtr ExprParser::postfix(ExprPtr e) {
  for (;;) {
    if (skip_op(".")) {
      ExprPtr a = make(Expr::Kind::attr);
      if (peek().kind == TK::integer) {  // x.0 is x[0]
        a->kind = Expr::Kind::item;
        a->b = make(Expr::Kind::literal);
        a->b->value = jinja::Value(t_[pos_++].integer);
      } else {
        a->name = expect_name();
      }
      a->a = std::move(e);
      e = std::move(a);
    } else if (skip_op("[")) {
      e = subscript(std::move(e));
    } else if (skip_op("(")) {
      e = call(std::move(e));
    } else {
      return e;
    }
  }
}

// A call of `callee`, its "(" read. A call of a plain name must be one of the global functions
// (methods are checked when called, since they depend on the value's type).
ExprPtr ExprParser::call(ExprPtr callee) {
  if (callee->kind == Expr::Kind::name) {
    const std::vector<std::string>& fs = global_functions();
    if (std::find(fs.begin(), fs.end(), callee->name) == fs.end()) {
      error(fmt::format("unsupported function '{}'", callee->name));
    }
  }
  ExprPtr c = make(Expr::Kind::call);
  c->a = std::move(callee);
  call_args(*c);
  return c;
}

ExprPtr ExprParser::subscript(ExprPtr e) {
  ExprPtr parts[3];
  int colons = 0;
  for (;;) {
    if (is_op("]")) break;
    if (skip_op(":")) {
      if (++colons > 2) error("a slice has at most three parts");
      continue;
    }
    if (parts[colons]) error(fmt::format("unexpected {} in a subscript", describe(peek())));
    parts[colons] = expression();
  }
  expect_op("]");
  ExprPtr s = make(colons == 0 ? Expr::Kind::item : Expr::Kind::slice);
  if (colons == 0 && !parts[0]) error("empty subscript []");
  s->a = std::move(e);
  s->b = std::move(parts[0]);
  s->c = std::move(parts[1]);
  s->d = std::move(parts[2]);
  return s;
}

void ExprParser::call_args(Expr& e) {
  while (!is_op(")")) {
    if (peek().kind == TK::name && is_op("=", 1)) {
      std::string key = t_[pos_].text;
      pos_ += 2;
      e.kwargs.emplace_back(std::move(key), expression());
    } else {
      if (!e.kwargs.empty()) error("positional argument after a keyword argument");
      e.args.push_back(expression());
    }
    if (!skip_op(",")) break;
  }
  expect_op(")");
}

ExprPtr ExprParser::filters(ExprPtr e) {
  for (;;) {
    if (skip_op("|")) {
      ExprPtr f = make(Expr::Kind::filter);
      f->name = expect_name();
      if (!is_known_filter(f->name)) error(fmt::format("unsupported filter '{}'", f->name));
      f->a = std::move(e);
      if (skip_op("(")) call_args(*f);
      e = std::move(f);
    } else if (skip_name("is")) {
      ExprPtr t = make(Expr::Kind::test);
      t->negate = skip_name("not");
      t->name = expect_name();
      if (!is_known_test(t->name)) error(fmt::format("unsupported test '{}'", t->name));
      t->a = std::move(e);
      if (skip_op("(")) {
        call_args(*t);
      } else if ((peek().kind == TK::name && !is_keyword(peek().text)) ||
                 peek().kind == TK::string || peek().kind == TK::integer ||
                 peek().kind == TK::floating) {
        t->args.push_back(postfix(primary()));  // x is divisibleby 3
      }
      e = std::move(t);
    } else if (skip_op("(")) {
      e = call(std::move(e));
    } else {
      return e;
    }
  }
}

}  // namespace kvpack::model
