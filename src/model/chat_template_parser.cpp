// Chat template parser: Jinja2's grammar for the subset in docs/tokenizers.md, with its operator
// precedence (lowest first): `x if c else y`, or, and, not, comparisons and `in`, + -, ~,
// * / // %, **, unary - +, then postfix (.attr, [item], [a:b:c], calls), then filters (|f) and
// tests (is [not] t), which bind tighter than any operator.
#include <algorithm>
#include <array>
#include <set>

#include "base/error.h"
#include "model/chat_template_ast.h"

namespace kvpack::model {
namespace {

using TK = TemplateToken::Kind;

constexpr std::array<std::string_view, 6> kCompareOps = {"==", "!=", "<", ">", "<=", ">="};

// Names that cannot start a bare test argument (`x is divisibleby 3` takes one).
bool is_keyword(std::string_view s) {
  static const std::set<std::string_view> kKeywords = {"and", "or",   "not",  "in",       "is",
                                                       "if",  "else", "elif", "recursive"};
  return kKeywords.count(s) != 0;
}

class ExprParser {
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
  void check_callable(const Expr& callee) const;
  void call_args(Expr& e);

  const std::vector<TemplateToken>& t_;
  size_t pos_ = 0;
  int line_;
  int depth_ = 0;

  friend class StatementParser;
};

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
      check_callable(*e);
      ExprPtr c = make(Expr::Kind::call);
      c->a = std::move(e);
      call_args(*c);
      e = std::move(c);
    } else {
      return e;
    }
  }
}

// A call of a plain name must be one of the global functions (methods are checked when called,
// since they depend on the value's type).
void ExprParser::check_callable(const Expr& callee) const {
  if (callee.kind != Expr::Kind::name) return;
  const std::vector<std::string>& fs = global_functions();
  if (std::find(fs.begin(), fs.end(), callee.name) == fs.end()) {
    error(fmt::format("unsupported function '{}'", callee.name));
  }
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
      check_callable(*e);
      ExprPtr c = make(Expr::Kind::call);
      c->a = std::move(e);
      call_args(*c);
      e = std::move(c);
    } else {
      return e;
    }
  }
}

// Statements: {% if %}, {% for %}, {% set %}, {% break %}, {% continue %}, {% generation %}.
class StatementParser {
 public:
  explicit StatementParser(std::vector<TemplatePiece> pieces) : pieces_(std::move(pieces)) {}

  Body parse() {
    std::string end;
    Body body = block({}, end);
    return body;
  }

 private:
  [[noreturn]] void error(int line, std::string_view what) const {
    fail("line {}: {}", line, what);
  }

  // Parses nodes until a statement whose keyword is in `until`; `end` gets that keyword ("" at
  // the end of the template, which is an error when `until` is not empty).
  Body block(const std::vector<std::string_view>& until, std::string& end);
  Node if_statement(ExprParser& p, int line);
  Node for_statement(ExprParser& p, int line);
  Node set_statement(ExprParser& p, int line);

  std::vector<TemplatePiece> pieces_;
  size_t next_ = 0;
  int last_line_ = 1;
  std::vector<std::string_view> open_;  // statements waiting for their end tag, for errors
};

Body StatementParser::block(const std::vector<std::string_view>& until, std::string& end) {
  if (open_.size() > static_cast<size_t>(kMaxTemplateNesting)) {
    error(pieces_[next_ - 1].line,
          fmt::format("statements nested more than {} deep", kMaxTemplateNesting));
  }
  Body body;
  while (next_ < pieces_.size()) {
    TemplatePiece& piece = pieces_[next_++];
    last_line_ = piece.line;
    Node n;
    n.line = piece.line;
    if (piece.kind == TemplatePiece::Kind::text) {
      n.kind = Node::Kind::text;
      n.text = std::move(piece.text);
      body.push_back(std::move(n));
      continue;
    }
    ExprParser p(piece.tokens, piece.line);
    if (piece.kind == TemplatePiece::Kind::output) {
      n.kind = Node::Kind::output;
      n.expr = p.expression();
      p.expect_end();
      body.push_back(std::move(n));
      continue;
    }
    const std::string keyword = p.expect_name();
    if (std::find(until.begin(), until.end(), keyword) != until.end()) {
      end = keyword;
      --next_;  // the caller reads the end tag's own tokens (elif's condition)
      return body;
    }
    if (keyword == "if") {
      body.push_back(if_statement(p, piece.line));
    } else if (keyword == "for") {
      body.push_back(for_statement(p, piece.line));
    } else if (keyword == "set") {
      body.push_back(set_statement(p, piece.line));
    } else if (keyword == "break" || keyword == "continue") {
      p.expect_end();
      n.kind = keyword == "break" ? Node::Kind::break_ : Node::Kind::continue_;
      body.push_back(std::move(n));
    } else if (keyword == "generation") {
      p.expect_end();
      n.kind = Node::Kind::generation;
      std::string e;
      open_.push_back("generation");
      n.body = block({"endgeneration"}, e);
      open_.pop_back();
      ExprParser(pieces_[next_++].tokens, n.line).expect_name();  // endgeneration
      body.push_back(std::move(n));
    } else if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else") {
      error(piece.line,
            fmt::format("unexpected '{}'{}", keyword,
                        open_.empty() ? std::string() : fmt::format(" inside '{}'", open_.back())));
    } else {
      error(piece.line,
            fmt::format("unsupported statement '{}' (kvpack's chat templates support if, for, "
                        "set, break, continue and generation)",
                        keyword));
    }
  }
  if (!until.empty()) {
    error(last_line_, fmt::format("'{}' is not closed (expected '{}')", open_.back(), until[0]));
  }
  end.clear();
  return body;
}

Node StatementParser::if_statement(ExprParser& p, int line) {
  Node n;
  n.kind = Node::Kind::if_;
  n.line = line;
  ExprPtr cond = p.expression();
  p.expect_end();
  open_.push_back("if");
  for (;;) {
    std::string end;
    Body body = block({"elif", "else", "endif"}, end);
    n.branches.emplace_back(std::move(cond), std::move(body));
    TemplatePiece& tag = pieces_[next_++];
    ExprParser q(tag.tokens, tag.line);
    q.expect_name();
    if (end == "endif") {
      q.expect_end();
      break;
    }
    if (end == "else") {
      q.expect_end();
      Body orelse = block({"endif"}, end);
      n.branches.emplace_back(nullptr, std::move(orelse));
      ExprParser r(pieces_[next_].tokens, pieces_[next_].line);
      ++next_;
      r.expect_name();
      r.expect_end();
      break;
    }
    cond = q.expression();  // elif
    q.expect_end();
  }
  open_.pop_back();
  return n;
}

Node StatementParser::for_statement(ExprParser& p, int line) {
  Node n;
  n.kind = Node::Kind::for_;
  n.line = line;
  const bool paren = p.skip_op("(");
  do {
    n.targets.push_back(p.expect_name());
  } while (p.skip_op(","));
  if (paren) p.expect_op(")");
  if (!p.skip_name("in")) p.error("expected 'in' in a for statement");
  n.expr = p.expression(/*with_condition=*/false);
  if (p.skip_name("if")) n.filter = p.expression();
  if (p.is_name("recursive")) p.error("unsupported: recursive for loops");
  p.expect_end();
  open_.push_back("for");
  std::string end;
  n.body = block({"else", "endfor"}, end);
  TemplatePiece* tag = &pieces_[next_++];
  ExprParser(tag->tokens, tag->line).expect_name();
  if (end == "else") {
    n.orelse = block({"endfor"}, end);
    tag = &pieces_[next_++];
  }
  ExprParser q(tag->tokens, tag->line);
  q.expect_name();
  q.expect_end();
  open_.pop_back();
  return n;
}

Node StatementParser::set_statement(ExprParser& p, int line) {
  Node n;
  n.line = line;
  n.targets.push_back(p.expect_name());
  if (p.skip_op(".")) {
    n.targets.push_back(p.expect_name());
    n.attribute_target = true;
  }
  if (p.is_op(",")) p.error("unsupported: assigning to several names in one set");
  if (p.at_end() && !n.attribute_target) {  // {% set x %}...{% endset %}
    n.kind = Node::Kind::set_block;
    open_.push_back("set");
    std::string end;
    n.body = block({"endset"}, end);
    open_.pop_back();
    ExprParser q(pieces_[next_].tokens, pieces_[next_].line);
    ++next_;
    q.expect_name();
    q.expect_end();
    return n;
  }
  n.kind = Node::Kind::set;
  p.expect_op("=");
  n.expr = p.expression();
  p.expect_end();
  return n;
}

}  // namespace

Body parse_template(std::vector<TemplatePiece> pieces) {
  return StatementParser(std::move(pieces)).parse();
}

}  // namespace kvpack::model
