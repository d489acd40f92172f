// kvpack's chat template renderer against Jinja2 itself (Debian's python3-jinja2, configured as
// Hugging Face's apply_chat_template configures it: tests/model/chat_template_reference.py):
// the real Llama 3, Qwen3 and Gemma 3 templates from ../shared/models/vocab, and templates
// written here in the style of Qwen 2.5, Llama 3.1 / 3.2 and Gemma 2 plus every construct of the
// subset, each rendered with many conversations. Outputs must be byte-identical, and a template
// that fails in Jinja2 (raise_exception, undefined values) must fail in kvpack too.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "cli_run.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using json = nlohmann::ordered_json;  // key order matters: tojson and items() keep it

jinja::Value to_value(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return jinja::Value::none();
    case json::value_t::boolean:
      return jinja::Value(j.get<bool>());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return jinja::Value(j.get<int64_t>());
    case json::value_t::number_float:
      return jinja::Value(j.get<double>());
    case json::value_t::string:
      return jinja::Value(j.get<std::string>());
    case json::value_t::array: {
      jinja::List l;
      for (const json& x : j) l.push_back(to_value(x));
      return jinja::Value(std::move(l));
    }
    case json::value_t::object: {
      jinja::Value d = jinja::Value::dict();
      for (const auto& [k, v] : j.items()) d.set(k, to_value(v));
      return d;
    }
    default:
      return {};
  }
}

// Python with Jinja2, or why it is not usable.
bool have_python_jinja2(std::string* why) {
  const std::string cmd = kvpack::testing::python3() + " -c 'import jinja2' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return true;
  *why = kvpack::testing::python3() +
         " cannot import jinja2 (Debian: apt-get install python3-jinja2; scripts/install-deps.sh "
         "does it)";
  return false;
}

#define REQUIRE_PYTHON_JINJA2()                                               \
  do {                                                                        \
    std::string why_;                                                         \
    if (!have_python_jinja2(&why_)) {                                         \
      if (::kvpack::testing::shared_required()) FAIL() << why_;               \
      GTEST_SKIP() << "SKIPPED (KVPACK_REQUIRE_SHARED is not set): " << why_; \
    }                                                                         \
  } while (0)

// Renders every case with Jinja2; returns one result per case.
json render_with_jinja2(const json& cases) {
  // Named per test and process (CTest runs the tests of this file in parallel), removed when the
  // process exits (cli_run.h).
  const std::string stem = std::string("chat_template_") +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string in = kvpack::testing::temp_path(stem + "_cases.json");
  const std::string out = kvpack::testing::temp_path(stem + "_results.json");
  {
    std::FILE* f = std::fopen(in.c_str(), "wb");
    const std::string text = cases.dump();
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  const std::string script =
      std::string(KVPACK_SOURCE_DIR) + "/tests/model/chat_template_reference.py";
  const std::string cmd =
      kvpack::testing::python3() + " '" + script + "' '" + in + "' '" + out + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return json::parse(kvpack::testing::read_text(out));
}

json message(const char* role, json content) {
  return json{{"role", role}, {"content", std::move(content)}};
}

// The conversations every template is rendered with.
std::vector<json> conversations() {
  const json sys = message("system", "You are a terse assistant.");
  const json u1 = message("user", "What is 2 + 2?");
  const json a1 = message("assistant", "4");
  const json u2 = message("user", "  And 3 + 3?\n");
  const json think = message("assistant", "<think>\nadd them\n</think>\n\n6, since 3 + 3 = 6.");
  const json tools = json::array({json{{"type", "function"},
                                       {"function",
                                        {{"name", "add"},
                                         {"description", "Adds \"two\" numbers <fast>"},
                                         {"parameters",
                                          {{"type", "object"},
                                           {"properties", {{"a", {{"type", "number"}}}}},
                                           {"required", json::array({"a"})}}}}}}});
  json call = message("assistant", "");
  call["tool_calls"] = json::array(
      {json{{"type", "function"}, {"function", {{"name", "add"}, {"arguments", {{"a", 1}}}}}}});
  std::vector<json> c;
  const auto add = [&](json messages, bool gen, json extra = json::object()) {
    json ctx = {{"messages", std::move(messages)}, {"add_generation_prompt", gen}};
    for (const auto& [k, v] : extra.items()) ctx[k] = v;
    c.push_back(std::move(ctx));
  };
  add({u1}, true);
  add({u1}, false);
  add({sys, u1}, true);
  add({sys, u1, a1, u2}, true);
  add({u1, a1}, false);
  add({u1, a1, u2, think}, false);
  add({u1, think, u2}, true);
  add({message("user", "caf\u00e9 \u65e5\u672c\u8a9e \xF0\x9F\x98\x80 \"quoted\" 'single' \\")},
      true);
  add({message("user", json::array({json{{"type", "text"}, {"text", " parts "}}}))}, true);
  add({u1, u2}, true);  // roles that do not alternate
  add({sys, u1}, true, {{"enable_thinking", false}});
  add({sys, u1, call, message("tool", "2"), message("tool", "3")}, true, {{"tools", tools}});
  add({u1}, true, {{"tools", tools}, {"date_string", "01 Jan 2025"}});
  add({message("user", "hi"), message("assistant", "<|eot_id|> literal")}, false);
  add(json::array(), true);
  return c;
}

void compare_with_jinja2(const std::vector<std::pair<std::string, std::string>>& templates) {
  json cases = json::array();
  for (const auto& [name, source] : templates) {
    for (json ctx : conversations()) {
      ctx["bos_token"] = "<bos>";
      ctx["eos_token"] = "<eos>";
      cases.push_back({{"name", name}, {"template", source}, {"context", ctx}});
    }
  }
  const json expected = render_with_jinja2(cases);
  ASSERT_EQ(expected.size(), cases.size());
  size_t agreed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string& name = cases[i]["name"].get_ref<const std::string&>();
    std::string got;
    std::string error;
    try {
      got = ChatTemplate::parse(cases[i]["template"].get<std::string>())
                .render(to_value(cases[i]["context"]));
    } catch (const Error& e) {
      error = e.what();
    }
    const json& want = expected[i];
    const std::string where = name + " with " + cases[i]["context"].dump();
    if (want["ok"].get<bool>()) {
      EXPECT_EQ(error, "") << where;
      EXPECT_EQ(got, want["output"].get<std::string>()) << where;
      agreed += error.empty() && got == want["output"].get<std::string>();
    } else {
      EXPECT_NE(error, "") << where << "\nJinja2 failed: " << want["error"]
                           << "\nkvpack gave: " << got;
      agreed += !error.empty();
    }
  }
  std::printf("%zu/%zu renderings agree with Jinja2\n", agreed, cases.size());
}

std::string template_of(const std::string& vocab) {
  std::string why;
  const auto path =
      kvpack::testing::shared_file("models/vocab/ggml-vocab-" + vocab + ".gguf", &why);
  if (path.empty()) {
    ADD_FAILURE() << why;
    return "";
  }
  return GgufFile::open(path.string()).require_string("tokenizer.chat_template");
}

// Templates written for this test in the style of the other families' templates (Qwen 2.5's
// default system prompt and tool calls, Llama 3.1's tool and date handling, Gemma 2's role
// checks), and one that walks through every construct of the subset.
const char* kChatmlStyle = R"TPL({%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages and messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'Default system text.' }}{%- endif %}
{{- '\n\nTools:' }}
{%- for tool in tools %}
{{- '\n' + tool | tojson }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif messages and messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>system\nDefault system text.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content | string + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}{{- '\n' + message.content }}{%- endif %}
        {%- for tc in message.tool_calls %}
            {%- if tc.function is defined %}{%- set tc = tc.function %}{%- endif %}
            {{- '\n<call>{"name": "' + tc.name + '", "arguments": ' + tc.arguments | tojson + '}</call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<response>\n' + message.content + '\n</response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
)TPL";

const char* kHeaderStyle = R"TPL({{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined and false %}{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "15 Mar 2024" %}{%- endif %}
{%- endif %}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}{{- "Environment: ipython\n" }}{%- endif %}
{%- set builtin = ['brave_search', 'code_interpreter', 'wolfram'] %}
{{- "Tools: " + builtin | reject('equalto', 'code_interpreter') | join(", ") + "\n" }}
{{- "Date: " + date_string + "\n\n" }}
{%- if tools is not none %}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\n\n" }}{%- endfor %}
{%- endif %}
{{- system_message + "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls | length == 1 %}{{- raise_exception("one call at a time") }}{%- endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' + call.name + '(' }}
        {%- for name, value in call.arguments | items %}{{- name + '=' + value | string }}{%- if not loop.last %}{{- ', ' }}{%- endif %}{%- endfor %}
        {{- ')<|eom_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' }}
        {%- if message.content is mapping or message.content is iterable and message.content is not string %}{{- message.content | tojson }}{%- else %}{{- message.content }}{%- endif %}
        {{- '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}
)TPL";

const char* kTurnStyle =
    R"TPL({{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Roles must alternate') }}{% endif %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})TPL";

const char* kConstructs = R"TPL({#- every construct of the subset -#}
{%- set ns = namespace(count=0, last_user='') %}
{%- for m in messages if m.role != 'system' %}
  {%- set ns.count = ns.count + 1 %}
  {%- if m.role == 'user' %}{% set ns.last_user = m.content %}{% endif %}
  [{{ loop.index }}/{{ loop.length }} {{ loop.revindex0 }} {{ loop.first }} {{ loop.last }} {{ m.role | upper }}]
  {%- if loop.index > 3 %}{% break %}{% endif %}
  {%- if m.content is not string %}{% continue %}{% endif %}
  {{ m.content | length }} {{ m.content[:5] }}|{{ m.content[::-1] }}|{{ m.content[-3:] }}|{{ m.content[1:-1:2] }}
{%- else %}
no messages
{%- endfor %}
count={{ ns.count }} last={{ ns.last_user | trim | title }}
{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 1e-7 }} {{ 123456789.0 * 1e9 }} {{ 2 ** -1 }}
{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 'x' not in ['y'] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} {{ 'b' >= 'a' }}
{{ none }} {{ true }} {{ [1, 'two', none, false, 2.5, {'k': [1]}] }} {{ {'a': 'it\'s'} }}
{{ 'yes' if messages else 'no' }} [{{ 'x' if false }}] {{ 'a' ~ 1 ~ none ~ [2] }} {{ not none }} {{ 0 or '' or 'last' }} {{ 1 and 2 }}
{{ ' x, y ,z '.split(',') }} {{ 'a b  c'.split() }} {{ 'a b c'.split(' ', 1) }} {{ '--x--'.strip('-') }} {{ 'xx'.lstrip('x') }}| {{ ' \t pad \n'.rstrip() }}|
{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('lo', 'x')) }} {{ 'a-b-c'.replace('-', '+') }} {{ 'hello world'.title() }} {{ 'ABC'.lower() }} {{ 'abc'.upper() }}
{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ [1, 0, 2] | select | list }} {{ ['a', 'b'] | join('/') }} {{ messages | map(attribute='role') | join(',') }}
{{ undefined_thing | default('dflt') }} {{ '' | default('empty', true) }} {{ 42 | string | length }} {{ [1, 2] | length }} {{ {'a': 1} | length }}
{{ 4 is divisibleby 2 }} {{ 3 is odd }} {{ 'x' is string }} {{ 1 is number }} {{ {} is mapping }} {{ [] is iterable }} {{ none is none }} {{ x is defined }} {{ 'q' is in 'qq' }} {{ 2 is even }}
{%- set block %}captured {{ 1 + 1 }}{% endset %}
{{ block | upper }}
{%- for k, v in {'one': 1, 'two': [2]}.items() %} {{ k }}={{ v }}{% endfor %}
{%- for k, v in {'b': 1, 'a': 2} | items %} {{ k }}:{{ v }}{% endfor %}
{% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(5, 0, -2) %}{{ i }},{% endfor %} {% for c in 'ab' %}<{{ c }}>{% endfor %}
{{ {'a': {'b': {'c': 'deep'}}}['a']['b'].c }} {{ [[1, 2], [3]][0][-1] }} {{ 'abc'[1] }} {{ [1][5] }}|{{ {}.get('k', 'fallback') }} {{ {'k': 2}.get('k') }}
{{ messages | tojson }} {{ {'n': none, 'f': 1.0, 't': true} | tojson }}
  {%+ if true %}kept indentation{% endif +%}
{# comment #}
{%- if true -%}
    stripped
{%- endif %}
    {% if false %}x{% elif true %}elif{% else %}else{% endif %}
end
)TPL";

TEST(ChatTemplateJinja, OwnTemplatesMatchJinja2) {
  REQUIRE_PYTHON_JINJA2();
  compare_with_jinja2({{"chatml-style", kChatmlStyle},
                       {"header-style", kHeaderStyle},
                       {"turn-style", kTurnStyle},
                       {"constructs", kConstructs}});
}

// Templates Jinja2 refuses at render time: kvpack must refuse them too.
TEST(ChatTemplateJinja, FailuresMatchJinja2) {
  REQUIRE_PYTHON_JINJA2();
  compare_with_jinja2({{"undefined-plus", "{{ missing + 1 }}"},
                       {"undefined-attr", "{{ missing.attr }}"},
                       {"attr-of-undefined-key", "{{ {'a': 1}.b.c }}"},
                       {"str-plus-int", "{{ 'a' + 1 }}"},
                       {"division-by-zero", "{{ 1 / 0 }}"},
                       {"raise", "{{ raise_exception('boom') }}"},
                       {"bad-unpack", "{% for a, b in [1] %}{% endfor %}"},
                       {"order-mixed", "{{ 1 < 'a' }}"},
                       {"tojson-undefined", "{{ missing | tojson }}"}});
}

TEST(ChatTemplateJinja, RealTemplatesMatchJinja2) {
  KVPACK_SHARED_FILE(dir, "models/vocab");
  REQUIRE_PYTHON_JINJA2();
  compare_with_jinja2({{"llama3", template_of("llama3")},
                       {"qwen3", template_of("qwen3")},
                       {"gemma3", template_of("gemma3")}});
}

}  // namespace
}  // namespace kvpack::model
