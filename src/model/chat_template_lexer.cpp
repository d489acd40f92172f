// Chat template lexer: cuts the source into text, {{ output }} and {% statement %} pieces and
// drops {# comments #}, with the whitespace control Hugging Face's Jinja environment uses:
// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it;
// - trim_blocks: the first newline after `%}` or `#}` goes;
// - lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` go;
// - `{%+` and `+%}` turn the last two off for one tag.
// Tags are tokenized here too, so a `}}` inside a string or a dict literal does not end a tag.
#include <cctype>
#include <cstring>

#include "base/error.h"
#include "model/chat_template_ast.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

constexpr std::string_view kSpace = " \t\n\r\v\f";

bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<TemplatePiece> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t start = find_tag(pos);
      std::string text(src_.substr(pos, start - pos));
      if (strip_next_) text.erase(0, text.find_first_not_of(kSpace));
      strip_next_ = false;
      if (start == src_.size()) {
        add_text(std::move(text), pos);
        break;
      }
      const char kind = src_[start + 1];
      const char modifier = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (modifier == '-') {
        text.erase(text.find_last_not_of(kSpace) + 1);
      } else if (modifier != '+' && kind != '{') {
        lstrip_line(text);
      }
      add_text(std::move(text), pos);
      const size_t body = start + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
      pos = kind == '#' ? comment(start, body) : tag(kind, start, body);
    }
    return std::move(pieces_);
  }

 private:
  [[noreturn]] void error(size_t at, std::string_view what) const {
    fail("line {}: {}", line_at(at), what);
  }

  int line_at(size_t at) const {
    if (at < line_pos_) {  // errors may look back: count again from the start
      line_pos_ = 0;
      line_ = 1;
    }
    while (line_pos_ < at && line_pos_ < src_.size()) {
      if (src_[line_pos_++] == '\n') ++line_;
    }
    return line_;
  }

  size_t find_tag(size_t from) const {
    for (size_t at = src_.find('{', from); at != std::string_view::npos;
         at = src_.find('{', at + 1)) {
      if (at + 1 < src_.size() && std::strchr("{%#", src_[at + 1]) != nullptr) return at;
    }
    return src_.size();
  }

  // lstrip_blocks: the spaces and tabs between the last line start and the tag go.
  void lstrip_line(std::string& text) const {
    const size_t line_start = text.rfind('\n') + 1;  // 0 when there is no newline
    if (line_start == 0 && !line_starting_) return;
    if (text.find_first_not_of(" \t", line_start) != std::string::npos) return;
    text.erase(line_start);
  }

  void add_text(std::string text, size_t at) {
    if (text.empty()) return;
    TemplatePiece p;
    p.kind = TemplatePiece::Kind::text;
    p.line = line_at(at);
    p.text = std::move(text);
    pieces_.push_back(std::move(p));
  }

  // After a tag ending at `end`: `-` strips what follows; trim_blocks eats one newline.
  size_t after_tag(size_t end, bool minus, bool plus, bool block) {
    strip_next_ = minus;
    line_starting_ = false;
    if (!minus && !plus && block && end < src_.size() && src_[end] == '\n') {
      line_starting_ = true;
      return end + 1;
    }
    return end;
  }

  size_t comment(size_t start, size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string_view::npos) error(start, "unterminated comment '{#'");
    const bool minus = close > body && src_[close - 1] == '-';
    const bool plus = close > body && src_[close - 1] == '+';
    return after_tag(close + 2, minus, plus, true);
  }

  size_t tag(char kind, size_t start, size_t at) {
    TemplatePiece p;
    p.kind = kind == '{' ? TemplatePiece::Kind::output : TemplatePiece::Kind::statement;
    p.line = line_at(start);
    const char close = kind == '{' ? '}' : '%';
    int depth = 0;  // open brackets: a closing delimiter inside them is an operator
    for (;;) {
      at = src_.find_first_not_of(kSpace, at);
      if (at == std::string_view::npos) {
        error(start, kind == '{' ? "unterminated '{{'" : "unterminated '{%'");
      }
      if (depth == 0) {
        const bool minus = src_.compare(at, 3, std::string{'-', close, '}'}) == 0;
        const bool plus = src_.compare(at, 3, std::string{'+', close, '}'}) == 0;
        if (minus || plus || src_.compare(at, 2, std::string{close, '}'}) == 0) {
          p.tokens.push_back({});  // end
          pieces_.push_back(std::move(p));
          return after_tag(at + (minus || plus ? 3 : 2), minus, plus, kind == '%');
        }
      }
      at = token(at, depth, p.tokens);
    }
  }

  // One token at `at`; returns the position after it.
  size_t token(size_t at, int& depth, std::vector<TemplateToken>& out) {
    TemplateToken t;
    const char c = src_[at];
    if (is_name_start(c)) {
      size_t end = at;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      t.kind = TemplateToken::Kind::name;
      t.text = src_.substr(at, end - at);
      out.push_back(std::move(t));
      return end;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return number(at, out);
    if (c == '\'' || c == '"') return string(at, out);
    static constexpr std::string_view kTwo[] = {"**", "//", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwo) {
      if (src_.compare(at, 2, op) == 0) {
        out.push_back({TemplateToken::Kind::op, std::string(op)});
        return at + 2;
      }
    }
    if (std::strchr("+-*/%~<>=()[]{}.,:|", c) == nullptr) {
      error(at, fmt::format("unexpected character {:?} in a tag", std::string(1, c)));
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    out.push_back({TemplateToken::Kind::op, std::string(1, c)});
    return at + 1;
  }

  size_t number(size_t at, std::vector<TemplateToken>& out) {
    size_t end = at;
    const auto digits = [&] {
      while (end < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) {
        ++end;
      }
    };
    digits();
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_float = true;
        end = e;
        digits();
      }
    }
    std::string text;
    for (size_t i = at; i < end; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    TemplateToken t;
    t.text = text;
    try {
      if (is_float) {
        t.kind = TemplateToken::Kind::floating;
        t.floating = std::stod(text);
      } else {
        t.kind = TemplateToken::Kind::integer;
        t.integer = std::stoll(text);
      }
    } catch (const std::exception&) {
      error(at, fmt::format("number {} is out of range", text));
    }
    out.push_back(std::move(t));
    return end;
  }

  // A quoted literal with Python's escapes (\n \t \r \\ \' \" \xhh \uXXXX \UXXXXXXXX ...); an
  // unknown escape keeps its backslash, as Python does.
  size_t string(size_t at, std::vector<TemplateToken>& out) {
    const char quote = src_[at];
    std::string s;
    size_t i = at + 1;
    for (;; ++i) {
      if (i >= src_.size()) error(at, "unterminated string literal");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (++i >= src_.size()) error(at, "unterminated string literal");
      i = escape(i, s);
    }
    out.push_back({TemplateToken::Kind::string, std::move(s)});
    return i + 1;
  }

  // The escape whose letter is at src_[i]; appends it and returns the index of its last char.
  size_t escape(size_t i, std::string& s) {
    const char c = src_[i];
    static constexpr std::string_view kFrom = "ntr\\'\"abfv0\n";
    static constexpr std::string_view kTo = "\n\t\r\\'\"\a\b\f\v";
    if (const size_t k = kFrom.find(c); k != std::string_view::npos) {
      if (c == '0') {
        s += '\0';
      } else if (c != '\n') {  // backslash-newline continues the line
        s += kTo[k];
      }
      return i;
    }
    const int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (digits == 0) {
      s += '\\';
      s += c;
      return i;
    }
    uint32_t cp = 0;
    for (int d = 1; d <= digits; ++d) {
      const int h = i + d < src_.size() ? hex_value(src_[i + d]) : -1;
      if (h < 0) error(i, fmt::format("truncated \\{} escape in a string literal", c));
      cp = cp * 16 + static_cast<uint32_t>(h);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      error(i, fmt::format("\\{} escape U+{:X} is not a character", c, cp));
    }
    utf8_append(s, cp);
    return i + static_cast<size_t>(digits);
  }

  std::string_view src_;
  std::vector<TemplatePiece> pieces_;
  bool strip_next_ = false;
  bool line_starting_ = true;
  mutable size_t line_pos_ = 0;  // line_at() counts newlines incrementally
  mutable int line_ = 1;
};

}  // namespace

std::vector<TemplatePiece> lex_template(std::string_view source) {
  // As Jinja2: every newline of the source becomes "\n", and one newline at the very end goes.
  std::string text;
  text.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] != '\r') {
      text += source[i];
    } else {
      text += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    }
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return Lexer(text).run();
}

}  // namespace kvpack::model
