// Chat templates: the Jinja subset that real GGUF chat templates (tokenizer.chat_template) use,
// rendered the way Hugging Face's apply_chat_template renders them (Jinja2 with trim_blocks and
// lstrip_blocks, loop controls, raise_exception, strftime_now and a tojson that keeps key order
// and non-ASCII text). docs/tokenizers.md lists the constructs; anything else is an Error that
// names the construct and its line, so a caller can fall back to a built-in format.
//
//   ChatTemplate t = ChatTemplate::parse(source);    // Error: "line 3: unsupported ..."
//   jinja::Value ctx = jinja::Value::dict();
//   ctx.set("messages", ...); ctx.set("add_generation_prompt", jinja::Value(true));
//   std::string prompt = t.render(ctx);
//
// A parsed template is immutable; render() may run on many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvpack::model {

namespace jinja {

class Value;
using List = std::vector<Value>;
// Insertion-ordered string-keyed map (Python's dict order, which tojson and items() keep).
using Dict = std::vector<std::pair<std::string, Value>>;

// A template value with Python's semantics: None, booleans, 64-bit integers, floats, strings
// (UTF-8, indexed by character), lists, dicts, namespaces (mutable dicts), built-in functions
// and Jinja's Undefined (what a missing variable, key or attribute reads as).
class Value {
 public:
  enum class Kind : uint8_t {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    dict,
    ns,        // namespace(...): a dict whose attributes `set ns.x = ...` may change
    function,  // a global function (raise_exception, namespace, range, strftime_now)
  };

  Value() = default;  // undefined
  explicit Value(bool b) : kind_(Kind::boolean), int_(b) {}
  explicit Value(int64_t i) : kind_(Kind::integer), int_(i) {}
  explicit Value(int i) : Value(static_cast<int64_t>(i)) {}
  explicit Value(double f) : kind_(Kind::floating), float_(f) {}
  explicit Value(std::string s);
  explicit Value(const char* s) : Value(std::string(s)) {}
  explicit Value(List items);
  static Value none();
  static Value undefined(std::string name);  // `name` says what was missing, for errors
  static Value dict(Dict items = {});
  static Value ns(Dict items);
  static Value function(std::string name);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_number() const { return kind_ == Kind::integer || kind_ == Kind::floating; }
  bool is_mapping() const { return kind_ == Kind::dict || kind_ == Kind::ns; }
  bool is_iterable() const;  // strings, lists and mappings

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  double as_number() const;  // integers and floats (and booleans, as Python)
  const std::string& str() const;
  const List& list() const;
  const Dict& items() const;  // dict or namespace
  // The missing name an undefined value stands for, or the function's name ("" when none).
  const std::string& name() const;

  // Dicts and namespaces: adds or replaces key (namespaces share their storage, so a copy of a
  // namespace sees the change, as Jinja's `set ns.x` needs).
  void set(const std::string& key, Value v);
  // The value at key, or undefined.
  Value get(std::string_view key) const;
  // Whether this value is the mapping m or holds it at any depth (shared storage compared, so
  // a namespace's copies count). `set` refuses what would make a namespace contain itself: a
  // cycle of shared pointers would never be freed.
  bool contains(const Value& m) const;

  bool truthy() const;
  // Python's str(): what {{ value }} prints. Lists and dicts print as Python's repr.
  std::string to_string() const;
  std::string repr() const;  // Python's repr()
  // json.dumps(value, ensure_ascii=False, indent=indent): indent < 0 is compact (", ", ": ").
  std::string to_json(int indent = -1) const;

 private:
  Kind kind_ = Kind::undefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> text_;  // string, or the name of undefined / function
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;  // dict and namespace
};

// Python's ==, and <, <=, ... (Error for types Python cannot order).
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // -1, 0, 1

}  // namespace jinja

struct ChatTemplateProgram;  // the parsed template (chat_template_ast.h)

class ChatTemplate {
 public:
  // Parses `source`. Throws Error "line N: ..." for syntax errors and for constructs outside the
  // subset (e.g. "line 4: unsupported statement 'macro'").
  static ChatTemplate parse(std::string_view source);

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // Renders with `context` (a dict: messages, add_generation_prompt, bos_token, ...). Throws
  // Error for runtime errors ("line 7: 'x' is undefined") and for raise_exception(msg), whose
  // message is kept: "the chat template raised: Conversation roles must alternate ...".
  std::string render(const jinja::Value& context) const;

 private:
  explicit ChatTemplate(std::unique_ptr<ChatTemplateProgram> program);
  std::unique_ptr<ChatTemplateProgram> program_;
};

}  // namespace kvpack::model
