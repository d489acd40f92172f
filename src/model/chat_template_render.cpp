// Chat template renderer: walks the parsed statements with Jinja2's scoping (a for loop's body is
// a fresh scope each iteration, so `set` inside it does not leak out; `if` bodies share the
// enclosing scope) and Python's operator semantics.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "base/error.h"
#include "model/chat_template_ast.h"
#include "model/utf8.h"

namespace kvpack::model {
namespace {

using jinja::Value;
using Kind = Value::Kind;

// Variables of one scope; lookups walk outwards.
struct Scope {
  const Scope* parent = nullptr;
  jinja::Dict vars;

  Value lookup(const std::string& name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent) {
      for (const auto& [k, v] : s->vars) {
        if (k == name) return v;
      }
    }
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }
  void assign(const std::string& name, Value v) {
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};

enum class Flow { normal, break_, continue_ };

class Renderer {
 public:
  // `iterations` counts every for-loop iteration of the render (shared with nested renderers).
  Renderer(std::string& out, int64_t& iterations) : out_(out), iterations_(iterations) {}

  Flow body(const Body& nodes, Scope& scope) {
    for (const Node& n : nodes) {
      const Flow f = node(n, scope);
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

 private:
  Flow node(const Node& n, Scope& scope);
  Flow for_loop(const Node& n, Scope& scope);
  void set(const Node& n, Scope& scope);
  Value eval(const Expr& e, const Scope& scope);
  Value eval_attr(const Expr& e, const Scope& scope);
  Value eval_item(const Value& obj, const Value& key);
  Value eval_slice(const Expr& e, const Scope& scope);
  Value eval_call(const Expr& e, const Scope& scope);
  Value eval_binary(const Expr& e, const Scope& scope);
  void eval_args(const Expr& e, const Scope& scope, std::vector<Value>& args,
                 std::vector<std::pair<std::string, Value>>& kwargs) {
    for (const ExprPtr& a : e.args) args.push_back(eval(*a, scope));
    for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v, scope));
  }

  void emit(const std::string& text) {
    out_ += text;
    check_text_size(out_.size());
  }

  std::string& out_;
  int64_t& iterations_;
};

Flow Renderer::node(const Node& n, Scope& scope) {
  try {
    switch (n.kind) {
      case Node::Kind::text:
        emit(n.text);
        return Flow::normal;
      case Node::Kind::output:
        emit(eval(*n.expr, scope).to_string());
        return Flow::normal;
      case Node::Kind::if_:
        for (const auto& [cond, branch] : n.branches) {
          if (!cond || eval(*cond, scope).truthy()) return body(branch, scope);
        }
        return Flow::normal;
      case Node::Kind::for_:
        return for_loop(n, scope);
      case Node::Kind::set:
      case Node::Kind::set_block:
        set(n, scope);
        return Flow::normal;
      case Node::Kind::break_:
        return Flow::break_;
      case Node::Kind::continue_:
        return Flow::continue_;
      case Node::Kind::generation:
        return body(n.body, scope);
    }
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("line ", 0) == 0) throw;
    fail("line {}: {}", n.line, what);
  }
  return Flow::normal;
}

Flow Renderer::for_loop(const Node& n, Scope& scope) {
  const Value seq = eval(*n.expr, scope);
  jinja::List items;
  switch (seq.kind()) {
    case Kind::undefined:
      break;
    case Kind::list:
      items = seq.list();
      break;
    case Kind::string:
      for (std::string_view c : utf8_chars(seq.str())) items.emplace_back(std::string(c));
      break;
    case Kind::dict:
    case Kind::ns:
      for (const auto& kv : seq.items()) items.emplace_back(kv.first);
      break;
    default:
      fail("'{}' is not iterable", seq.repr());
  }
  const auto bind = [&](Scope& s, const Value& item) {
    if (n.targets.size() == 1) {
      s.assign(n.targets[0], item);
      return;
    }
    if (item.kind() != Kind::list || item.list().size() != n.targets.size()) {
      fail("cannot unpack {} into {} names", item.repr(), n.targets.size());
    }
    for (size_t i = 0; i < n.targets.size(); ++i) s.assign(n.targets[i], item.list()[i]);
  };
  if (n.filter) {  // `for x in xs if cond`: loop.index counts the kept items only
    jinja::List kept;
    for (const Value& item : items) {
      Scope s{&scope, {}};
      bind(s, item);
      if (eval(*n.filter, s).truthy()) kept.push_back(item);
    }
    items.swap(kept);
  }
  const auto count = static_cast<int64_t>(items.size());
  bool completed = false;
  // One `loop` object per loop, updated each iteration (Jinja2's LoopContext is one live object
  // too); it keeps the per-iteration cost to a few stores.
  const Value no_item = Value::undefined("loop has no such item");
  Value loop = Value::dict({{"index", {}},
                            {"index0", {}},
                            {"revindex", {}},
                            {"revindex0", {}},
                            {"first", {}},
                            {"last", {}},
                            {"length", Value(count)},
                            {"previtem", {}},
                            {"nextitem", {}}});
  for (int64_t i = 0; i < count; ++i) {
    if (++iterations_ > kMaxLoopIterations) {
      fail("the chat template ran more than {} loop iterations", kMaxLoopIterations);
    }
    loop.set("index", Value(i + 1));
    loop.set("index0", Value(i));
    loop.set("revindex", Value(count - i));
    loop.set("revindex0", Value(count - i - 1));
    loop.set("first", Value(i == 0));
    loop.set("last", Value(i + 1 == count));
    loop.set("previtem", i > 0 ? items[i - 1] : no_item);
    loop.set("nextitem", i + 1 < count ? items[i + 1] : no_item);
    Scope s{&scope, {}};
    s.vars.reserve(n.targets.size() + 1);
    bind(s, items[i]);
    s.vars.emplace_back("loop", loop);
    const Flow f = body(n.body, s);
    if (f == Flow::normal) completed = true;
    if (f == Flow::break_) break;
  }
  // Jinja2 runs the else block unless some iteration ran its body to the end (an iteration cut
  // short by continue or break does not count).
  if (!completed) return body(n.orelse, scope);
  return Flow::normal;
}

void Renderer::set(const Node& n, Scope& scope) {
  Value v;
  if (n.kind == Node::Kind::set_block) {
    std::string captured;
    Renderer inner(captured, iterations_);
    inner.body(n.body, scope);
    v = Value(std::move(captured));
  } else {
    v = eval(*n.expr, scope);
  }
  if (!n.attribute_target) {
    scope.assign(n.targets[0], std::move(v));
    return;
  }
  Value ns = scope.lookup(n.targets[0]);
  if (ns.kind() != Kind::ns) {
    fail("cannot assign attribute '{}' on {}: only a namespace() takes attributes", n.targets[1],
         n.targets[0]);
  }
  ns.set(n.targets[1], std::move(v));  // namespaces share storage: every copy sees it
}

Value Renderer::eval(const Expr& e, const Scope& scope) {
  switch (e.kind) {
    case Expr::Kind::literal:
      return e.value;
    case Expr::Kind::name:
      return scope.lookup(e.name);
    case Expr::Kind::list: {
      jinja::List l;
      for (const ExprPtr& a : e.args) l.push_back(eval(*a, scope));
      return Value(std::move(l));
    }
    case Expr::Kind::dict: {
      Value d = Value::dict();
      for (const auto& [k, v] : e.kwargs) d.set(k, eval(*v, scope));
      return d;
    }
    case Expr::Kind::attr:
      return eval_attr(e, scope);
    case Expr::Kind::item:
      return eval_item(eval(*e.a, scope), eval(*e.b, scope));
    case Expr::Kind::slice:
      return eval_slice(e, scope);
    case Expr::Kind::call:
      return eval_call(e, scope);
    case Expr::Kind::filter: {
      std::vector<Value> args;
      std::vector<std::pair<std::string, Value>> kwargs;
      eval_args(e, scope, args, kwargs);
      return apply_filter(e.name, eval(*e.a, scope), args, kwargs);
    }
    case Expr::Kind::test: {
      std::vector<Value> args;
      std::vector<std::pair<std::string, Value>> kwargs;
      eval_args(e, scope, args, kwargs);
      return Value(apply_test(e.name, eval(*e.a, scope), args) != e.negate);
    }
    case Expr::Kind::unary: {
      const Value v = eval(*e.a, scope);
      if (e.name == "not") return Value(!v.truthy());
      if (v.is_undefined()) undefined_error(v);
      if (v.kind() == Kind::floating) return Value(e.name == "-" ? -v.as_number() : v.as_number());
      if (!v.is_number() && v.kind() != Kind::boolean) {
        fail("bad operand type for unary {}: {}", e.name, v.repr());
      }
      if (e.name == "+") return Value(v.as_int());
      return arithmetic("-", Value(0), v);
    }
    case Expr::Kind::binary:
      return eval_binary(e, scope);
    case Expr::Kind::compare: {
      Value left = eval(*e.a, scope);
      for (const auto& [op, operand] : e.kwargs) {
        Value right = eval(*operand, scope);
        if (!compare_op(op, left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::ternary:
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      return e.c ? eval(*e.c, scope) : Value::undefined("the conditional has no else");
  }
  return {};
}

Value Renderer::eval_attr(const Expr& e, const Scope& scope) {
  const Value obj = eval(*e.a, scope);
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_mapping()) {
    const Value v = obj.get(e.name);
    if (!v.is_undefined()) return v;
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", e.name));
  }
  return Value::undefined(fmt::format("{} has no attribute '{}'", obj.repr(), e.name));
}

Value Renderer::eval_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_mapping() && key.is_string()) {
    const Value v = obj.get(key.str());
    if (!v.is_undefined()) return v;
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", key.str()));
  }
  if ((obj.kind() == Kind::list || obj.is_string()) && key.kind() == Kind::integer) {
    std::vector<std::string_view> chars;
    if (obj.is_string()) chars = utf8_chars(obj.str());
    const auto n = static_cast<int64_t>(obj.is_string() ? chars.size() : obj.list().size());
    const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
    if (i >= 0 && i < n) {
      return obj.is_string() ? Value(std::string(chars[static_cast<size_t>(i)]))
                             : obj.list()[static_cast<size_t>(i)];
    }
  }
  return Value::undefined(fmt::format("{} has no item {}", obj.repr(), key.repr()));
}

Value Renderer::eval_slice(const Expr& e, const Scope& scope) {
  const Value obj = eval(*e.a, scope);
  const auto part = [&](const ExprPtr& p) { return p ? eval(*p, scope) : Value::none(); };
  const Value start = part(e.b);
  const Value stop = part(e.c);
  const Value step = part(e.d);
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_string()) {
    const std::vector<std::string_view> chars = utf8_chars(obj.str());
    std::string s;
    for (int64_t i : slice_indices(static_cast<int64_t>(chars.size()), start, stop, step)) {
      s += chars[static_cast<size_t>(i)];
    }
    return Value(std::move(s));
  }
  if (obj.kind() != Kind::list) fail("{} cannot be sliced", obj.repr());
  jinja::List l;
  for (int64_t i : slice_indices(static_cast<int64_t>(obj.list().size()), start, stop, step)) {
    l.push_back(obj.list()[static_cast<size_t>(i)]);
  }
  return Value(std::move(l));
}

Value Renderer::eval_call(const Expr& e, const Scope& scope) {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  if (e.a->kind == Expr::Kind::attr) {  // a method: x.strip(), d.items(), ...
    const Value obj = eval(*e.a->a, scope);
    if (obj.is_undefined()) undefined_error(obj);
    eval_args(e, scope, args, kwargs);
    return call_method(obj, e.a->name, args, kwargs);
  }
  const Value callee = eval(*e.a, scope);
  if (callee.is_undefined()) undefined_error(callee);
  if (callee.kind() != Kind::function) fail("{} is not callable", callee.repr());
  eval_args(e, scope, args, kwargs);
  return call_function(callee.name(), args, kwargs);
}

Value Renderer::eval_binary(const Expr& e, const Scope& scope) {
  if (e.name == "and" || e.name == "or") {  // Python: the deciding operand itself
    Value a = eval(*e.a, scope);
    if (a.truthy() == (e.name == "or")) return a;
    return eval(*e.b, scope);
  }
  const Value a = eval(*e.a, scope);
  const Value b = eval(*e.b, scope);
  if (e.name == "~") return Value(a.to_string() + b.to_string());
  return arithmetic(e.name, a, b);
}

}  // namespace

ChatTemplate::ChatTemplate(std::unique_ptr<ChatTemplateProgram> program)
    : program_(std::move(program)) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::parse(std::string_view source) {
  auto program = std::make_unique<ChatTemplateProgram>();
  program->body = parse_template(lex_template(source));
  return ChatTemplate(std::move(program));
}

std::string ChatTemplate::render(const jinja::Value& context) const {
  Scope globals;
  for (const std::string& f : global_functions()) globals.assign(f, Value::function(f));
  Scope top{&globals, {}};
  if (context.is_mapping()) {
    for (const auto& [k, v] : context.items()) top.assign(k, v);
  }
  std::string out;
  int64_t iterations = 0;
  if (Renderer(out, iterations).body(program_->body, top) != Flow::normal) {
    fail("'break' or 'continue' outside a for loop");
  }
  return out;
}

}  // namespace kvpack::model
