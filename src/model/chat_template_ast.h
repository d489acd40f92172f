// The parsed form of a chat template (internal to chat_template_*.cpp): the lexer cuts the
// source into text and tags, applying Jinja's whitespace control; the parser builds these nodes;
// the renderer walks them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template.h"

namespace kvpack::model {

// ---- Limits (a template is untrusted input: it must not exhaust memory, time or stack) ----

constexpr size_t kMaxTemplateText = size_t{16} << 20;     // bytes of any string or of the output
constexpr int64_t kMaxTemplateItems = int64_t{1} << 20;   // items of a list; range() length
constexpr int64_t kMaxLoopIterations = int64_t{1} << 20;  // for-loop iterations per render
constexpr int kMaxTemplateNesting = 100;  // nested statements, or nested parts of an expression

// Error unless a string of `bytes` is within kMaxTemplateText.
void check_text_size(size_t bytes);

// ---- Lexer output ----

struct TemplateToken {
  enum class Kind { name, integer, floating, string, op, end };
  Kind kind = Kind::end;
  std::string text;  // name, operator, or the unescaped string literal
  int64_t integer = 0;
  double floating = 0;
};

struct TemplatePiece {
  enum class Kind { text, output, statement };  // raw text, {{ ... }}, {% ... %}
  Kind kind = Kind::text;
  int line = 1;                       // where the piece starts in the source
  std::string text;                   // text pieces, after whitespace control
  std::vector<TemplateToken> tokens;  // tags, ending with an `end` token
};

// Cuts `source` into pieces; comments are dropped. Throws Error naming the line for an
// unterminated tag, string or comment.
std::vector<TemplatePiece> lex_template(std::string_view source);

// ---- Expressions ----

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,  // value
    name,     // name
    list,     // [args...]
    dict,     // {kwargs...}
    attr,     // a.name
    item,     // a[b]
    slice,    // a[b:c:d]; missing parts are null
    call,     // a(args, kwargs); a method call when a is attr
    filter,   // a | name(args, kwargs)
    test,     // a is [not] name(args); negate
    unary,    // op a: "not", "-", "+"
    binary,   // a op b: "and" "or" "+" "-" "*" "/" "//" "%" "**" "~"
    compare,  // a op1 x1 op2 x2 ...: kwargs = (op, operand); "==" "!=" "<" ... "in" "not in"
    ternary,  // b if a else c (c may be null: undefined)
  };
  Kind kind;
  int line = 0;
  jinja::Value value;
  std::string name;  // name, attribute, filter, test, operator
  bool negate = false;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

// ---- Statements ----

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind {
    text,        // text
    output,      // {{ expr }}
    if_,         // branches: (condition, body), the else branch with a null condition
    for_,        // for targets in expr [if filter]: body [else: orelse]
    set,         // set targets[0] (or ns.attr: targets = {ns, attr}) = expr
    set_block,   // set targets[0]: body rendered to a string
    break_,      // {% break %}
    continue_,   // {% continue %}
    generation,  // {% generation %}: body (Hugging Face's assistant-mask marker; renders body)
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  bool attribute_target = false;  // set ns.attr = ...
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body orelse;
};

struct ChatTemplateProgram {
  Body body;
};

// Parses the pieces into statements. Throws Error "line N: ..." for syntax errors and constructs
// outside the subset.
Body parse_template(std::vector<TemplatePiece> pieces);

// ---- Python's operators (chat_template_ops.cpp) ----

// a op b for "+" "-" "*" "/" "//" "%" "**".
jinja::Value arithmetic(const std::string& op, const jinja::Value& a, const jinja::Value& b);
// a op b for "==" "!=" "<" "<=" ">" ">=" "in" "not in".
bool compare_op(const std::string& op, const jinja::Value& a, const jinja::Value& b);
// The indices Python's seq[start:stop:step] selects from a sequence of n items.
std::vector<int64_t> slice_indices(int64_t n, const jinja::Value& start, const jinja::Value& stop,
                                   const jinja::Value& step);
// The error for using an undefined value (its message says what was missing).
[[noreturn]] void undefined_error(const jinja::Value& v);

// ---- Built-ins (chat_template_builtins.cpp, chat_template_strings.cpp) ----

using TemplateArgs = std::vector<jinja::Value>;
using TemplateKwargs = std::vector<std::pair<std::string, jinja::Value>>;
// The argument at `i`, or keyword `name`, or `fallback`.
jinja::Value arg(const TemplateArgs& args, const TemplateKwargs& kwargs, size_t i,
                 std::string_view name, jinja::Value fallback = jinja::Value());
void check_arity(std::string_view what, const TemplateArgs& args, size_t most);
// v's string; Error naming `what` when v is not one.
const std::string& need_string(const jinja::Value& v, std::string_view what);
// `s` with f applied to its ASCII bytes (Python's upper()/lower() for ASCII text).
std::string map_chars(const std::string& s, int (*f)(int));
// Jinja's title filter (not str.title()).
std::string title_filter(const std::string& s);
// str.name(args) for the string methods of the subset.
jinja::Value string_method(const std::string& s, const std::string& name, const TemplateArgs& args,
                           const TemplateKwargs& kwargs);

// Filter `name` applied to `v`; Error naming an unknown filter.
jinja::Value apply_filter(const std::string& name, const jinja::Value& v,
                          const std::vector<jinja::Value>& args,
                          const std::vector<std::pair<std::string, jinja::Value>>& kwargs);
// Test `name` (`v is name(args)`); Error naming an unknown test.
bool apply_test(const std::string& name, const jinja::Value& v,
                const std::vector<jinja::Value>& args);
// Method `name` of a string, dict or list (`v.name(args)`); Error naming an unknown one.
jinja::Value call_method(const jinja::Value& v, const std::string& name,
                         const std::vector<jinja::Value>& args,
                         const std::vector<std::pair<std::string, jinja::Value>>& kwargs);
// A global function (raise_exception, namespace, range, strftime_now).
jinja::Value call_function(const std::string& name, const std::vector<jinja::Value>& args,
                           const std::vector<std::pair<std::string, jinja::Value>>& kwargs);
// Functions templates may call; bound in every render's global scope.
const std::vector<std::string>& global_functions();
// Whether the subset has this filter / test (the parser refuses others up front, so a template
// outside the subset fails when it is loaded, not halfway through a conversation).
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

// Python string operations on UTF-8 by character (invalid bytes count as characters).
std::vector<std::string_view> utf8_chars(std::string_view s);
bool is_python_space(std::string_view ch);
std::string python_strip(std::string_view s, bool left, bool right, const jinja::Value& chars);

}  // namespace kvpack::model
