// Chat template statement parser: text, {{ output }} and the statements of the subset (if, for,
// set, break, continue, generation) into nodes; each tag's expression goes to ExprParser.
#include <algorithm>

#include "base/error.h"
#include "model/chat_template_expr.h"

namespace kvpack::model {
namespace {

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
