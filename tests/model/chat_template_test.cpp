// The chat template subset's own contract: constructs outside it are parse errors that name the
// construct and its line; runtime failures name the line and keep raise_exception's message;
// whitespace control follows Jinja2 (trim_blocks, lstrip_blocks, - and +). Rendering against
// Jinja2 itself is chat_template_jinja_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "error_of.h"
#include "model/chat_template.h"

namespace kvpack::model {
namespace {

using jinja::Value;
using ::testing::HasSubstr;

std::string render(std::string_view source, Value context = Value::dict()) {
  return ChatTemplate::parse(source).render(context);
}

std::string parse_error(std::string_view source) {
  return kvpack::testing::error_of([&] { ChatTemplate::parse(source); });
}

std::string render_error(std::string_view source, Value context = Value::dict()) {
  return kvpack::testing::error_of([&] { render(source, context); });
}

TEST(ChatTemplate, UnsupportedConstructsAreNamedWithTheirLine) {
  EXPECT_THAT(parse_error("a\n{% macro m() %}x{% endmacro %}"),
              AllOf(HasSubstr("line 2"), HasSubstr("unsupported statement 'macro'")));
  EXPECT_THAT(parse_error("{% raw %}{% endraw %}"), HasSubstr("unsupported statement 'raw'"));
  EXPECT_THAT(parse_error("{% include 'x' %}"), HasSubstr("'include'"));
  EXPECT_THAT(parse_error("{{ x | indent(2) }}"), HasSubstr("unsupported filter 'indent'"));
  EXPECT_THAT(parse_error("{{ x is sameish }}"), HasSubstr("unsupported test 'sameish'"));
  EXPECT_THAT(parse_error("\n\n{{ cycler() }}"),
              AllOf(HasSubstr("line 3"), HasSubstr("unsupported function 'cycler'")));
  EXPECT_THAT(parse_error("{% for x in y recursive %}{% endfor %}"), HasSubstr("recursive"));
  EXPECT_THAT(parse_error("{% set a, b = 1, 2 %}"), HasSubstr("several names"));
}

TEST(ChatTemplate, SyntaxErrorsNameTheLine) {
  EXPECT_THAT(parse_error("x\ny {{ 1 + }}"), AllOf(HasSubstr("line 2"), HasSubstr("expected")));
  EXPECT_THAT(parse_error("{% if x %}open"), HasSubstr("'if' is not closed"));
  EXPECT_THAT(parse_error("{% for x in y %}{% endif %}"), HasSubstr("unexpected 'endif'"));
  EXPECT_THAT(parse_error("{{ 'abc }}"), HasSubstr("unterminated string"));
  EXPECT_THAT(parse_error("{{ x "), HasSubstr("unterminated '{{'"));
  EXPECT_THAT(parse_error("{# never closed"), HasSubstr("unterminated comment"));
  EXPECT_THAT(parse_error("{{ x $ y }}"), HasSubstr("unexpected character"));
  EXPECT_THAT(parse_error("{{ '\\u12' }}"), HasSubstr("truncated \\u escape"));
  EXPECT_THAT(parse_error("{% endfor %}"), HasSubstr("unexpected 'endfor'"));
}

TEST(ChatTemplate, RuntimeErrorsNameTheLineAndKeepRaisedMessages) {
  EXPECT_THAT(render_error("ok\n{{ missing + 1 }}"),
              AllOf(HasSubstr("line 2"), HasSubstr("'missing' is undefined")));
  EXPECT_THAT(render_error("{{ raise_exception('Roles must alternate') }}"),
              HasSubstr("the chat template raised an error: Roles must alternate"));
  EXPECT_THAT(render_error("{{ 'a'.nosuch() }}"), HasSubstr("unsupported string method"));
  EXPECT_THAT(render_error("{% set x = 1 %}{% set x.y = 2 %}"), HasSubstr("namespace"));
  EXPECT_THAT(render_error("{{ 2 ** 70 }}"), HasSubstr("integer overflow"));
  EXPECT_THAT(render_error("{% break %}"), HasSubstr("outside a for loop"));
}

// A template is untrusted input (it comes from the GGUF): it cannot exhaust time, memory or stack.
TEST(ChatTemplate, ResourceLimits) {
  EXPECT_THAT(render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"),
              HasSubstr("containing itself"));
  EXPECT_THAT(render_error("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns | tojson }}"),
              HasSubstr("containing itself"));
  // Refused where the cycle would be made (a shared-pointer cycle is never freed: LeakSanitizer
  // caught it), through another namespace and a dict, and before anything prints it.
  EXPECT_THAT(render_error("{% set a = namespace() %}{% set b = namespace(x={'y': [a]}) %}"
                           "{% set a.b = b %}"),
              HasSubstr("cannot set 'b': a namespace containing itself"));
  // A value sharing one list many times over is walked once per distinct container.
  EXPECT_EQ(render("{% set ns = namespace(v=[1]) %}{% for i in range(60) %}"
                   "{% set ns.v = [ns.v, ns.v] %}{% endfor %}{% set other = namespace() %}"
                   "{% set other.v = ns.v %}ok"),
            "ok");
  EXPECT_THAT(render_error("{{ 'x' * 100000000 }}"), HasSubstr("too large"));
  EXPECT_THAT(render_error("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                           "{% set ns.s = ns.s + ns.s %}{% endfor %}"),
              HasSubstr("a string of more than 16 MiB"));
  EXPECT_THAT(render_error("{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}"
                           "{% endfor %}"),
              HasSubstr("more than 1048576 loop iterations"));
  EXPECT_THAT(render_error("{{ range(10000000) }}"), HasSubstr("range() of more than"));
  EXPECT_THAT(parse_error("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}"),
              HasSubstr("nested more than 100 deep"));
  EXPECT_THAT(parse_error("{{ " + std::string(500, '-') + "1 }}"), HasSubstr("nested"));
  std::string deep;
  for (int i = 0; i < 500; ++i) deep += "{% if true %}";
  EXPECT_THAT(parse_error(deep), HasSubstr("statements nested more than 100 deep"));
}

TEST(ChatTemplate, WhitespaceControl) {
  // trim_blocks eats the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n  y"), "  x\n  y");
  EXPECT_EQ(render("a {{- ' b ' -}} c"), "a b c");
  EXPECT_EQ(render("a {# c #}\n  b\n  {#- c -#}  \n d"), "a   bd");
  EXPECT_EQ(render("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");
  EXPECT_EQ(render("{{ 1 }}\n{{ 2 }}"), "1\n2");  // output tags keep their newline
  EXPECT_EQ(render("{{ '}}' }}{{ {'a': {'b': 1}} }}"), "}}{'a': {'b': 1}}");
}

TEST(ChatTemplate, ValuesPrintAsPython) {
  EXPECT_EQ(render("{{ 1.0 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -2.5e-10 }}"),
            "1.0 1e+16 1000000000000000.0 0.0001 1e-05 -2.5e-10");
  EXPECT_EQ(render("{{ [none, true, 'a\"b', \"it's\", 'x\\ny'] }}"),
            "[None, True, 'a\"b', \"it's\", 'x\\ny']");
  EXPECT_EQ(render("{{ {'k': [1, 2.5]} | tojson(indent=2) }}"),
            "{\n  \"k\": [\n    1,\n    2.5\n  ]\n}");
  EXPECT_EQ(render("{{ 'caf\u00e9' | length }} {{ 'caf\u00e9'[-1] }} {{ 'caf\u00e9'[::-1] }}"),
            "4 \u00e9 \u00e9fac");
}

TEST(ChatTemplate, ContextValuesAndNamespacesAreShared) {
  Value ctx = Value::dict();
  ctx.set("messages",
          Value(jinja::List{Value::dict({{"role", Value("user")}, {"content", Value("hi")}})}));
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                   "{% endfor %}{{ ns.n }} {{ messages[0].role }}",
                   ctx),
            "1 user");
  // A set inside a loop does not leak out of it, nor into the next iteration (Jinja2 scoping).
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}"
                   "{{ x }}"),
            "12121");
}

}  // namespace
}  // namespace kvpack::model
