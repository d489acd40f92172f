// `kvpack run --chat` through the built binary, non-interactively (turns piped into stdin): a
// random-weight Llama-architecture model with the Qwen fixture's vocabulary (ChatML markers) and
// a chat template in its metadata. Each turn evaluates only its new tokens (the cache ends up
// holding every token exactly once), one-shot -p gives the same first reply as the piped
// conversation, the system prompt and template reach the prompt, replies stop at an
// end-of-generation token, and bad input is one error line.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "cli_run.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/synthetic_model.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using ::testing::HasSubstr;

const char* kChatml =
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

// Per process, removed when it exits (cli_run.h).
std::string temp_path(const std::string& name) {
  return kvpack::testing::temp_path("chat_cli_" + name);
}

// A synthetic Llama model carrying the qwen2 fixture's tokenizer (1027 tokens, <|im_start|>
// 1025, <|im_end|> 1026) and, unless empty, `chat_template`. With `silent`, the output
// projection is zero: every logit ties, greedy picks id 0, which the vocabulary then makes
// <|im_end|>, so every reply ends at once.
std::string chat_model(const std::filesystem::path& vocab_file, const std::string& name,
                       const std::string& chat_template, bool silent = false) {
  const GgufFile vocab = GgufFile::open(vocab_file.string());
  SyntheticModel m;
  m.n_vocab = 1027;
  m.n_ctx = 4096;
  GgufWriter w = synthetic_model(m);
  for (const auto& [key, value] : vocab.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  if (silent) {  // <|im_end|> becomes id 0 (GPT-2's "!" takes its place at 1026)
    std::vector<std::string> tokens = *vocab.get_strings("tokenizer.ggml.tokens");
    std::vector<int64_t> types = *vocab.get_ints("tokenizer.ggml.token_type");
    std::swap(tokens[0], tokens[1026]);
    std::swap(types[0], types[1026]);
    w.set("tokenizer.ggml.tokens", gguf_string_array(tokens));
    w.set("tokenizer.ggml.token_type", gguf_int_array(GgufType::i32, types));
    w.set("tokenizer.ggml.eos_token_id", gguf_uint(GgufType::u32, 0));
  }
  if (!chat_template.empty()) w.set("tokenizer.chat_template", gguf_string(chat_template));
  std::vector<uint8_t> bytes = w.bytes();
  if (silent) {
    const GgufFile f = GgufFile::parse(bytes, name);
    const GgufTensor* out = f.find_tensor("output.weight");
    std::memset(bytes.data() + (out->data - bytes.data()), 0, out->bytes);
  }
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string input_file(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The number after `label` in the chat summary line, e.g. "tokens in the cache".
int64_t summary_number(const std::string& err, const std::string& before) {
  std::smatch m;
  const std::regex re("(\\d+) " + before);
  if (!std::regex_search(err, m, re)) {
    ADD_FAILURE() << "no '" << before << "' in\n" << err;
    return -1;
  }
  return std::stoll(m[1]);
}

TEST(ChatCli, PipedTurnsEvaluateEachTokenOnce) {
  KVPACK_SHARED_FILE(vocab, "models/arch/models/qwen2-f16.gguf");
  const std::string model = chat_model(vocab, "chatml.gguf", kChatml);
  const std::string turns = input_file("turns.txt", "Hello there\n\nHow are you?\nBye\\\nnow\n");
  const auto r =
      testing::run_kvpack("run -m '" + model + "' --chat --temp 0 -n 12 -t 2 < '" + turns + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("kvpack: chat: 3 turns"));
  EXPECT_THAT(r.err, HasSubstr("format: the GGUF's chat template"));
  const int64_t cached = summary_number(r.err, "tokens in the cache");
  EXPECT_EQ(summary_number(r.err, "evaluated"), cached);  // no token evaluated twice
  EXPECT_GT(cached, 3 * 12);
  EXPECT_THAT(r.err, HasSubstr("kv cache residency"));

  // One-shot: the same first turn gives the same first reply.
  const auto one =
      testing::run_kvpack("run -m '" + model + "' --chat --temp 0 -n 12 -t 2 -p 'Hello there'");
  ASSERT_EQ(one.status, 0) << one.err;
  EXPECT_THAT(one.err, HasSubstr("kvpack: chat: 1 turns"));
  ASSERT_FALSE(one.out.empty());
  EXPECT_EQ(r.out.substr(0, one.out.size()), one.out);
}

// The prompt the model sees is the template's rendering: with -n 1 nothing is decoded, so the
// prefill count is exactly its token count (system prompt included).
TEST(ChatCli, SystemPromptAndTemplateReachThePrompt) {
  KVPACK_SHARED_FILE(vocab, "models/arch/models/qwen2-f16.gguf");
  const std::string model = chat_model(vocab, "chatml_sys.gguf", kChatml);
  const GgufFile file = GgufFile::open(model);
  const auto tok = Tokenizer::from_gguf(file);
  const ChatFormat format = ChatFormat::from_gguf(file, *tok);
  const std::string rendered =
      format.render({{{"system", "Be brief."}, {"user", "Hello there"}}}, true);
  const size_t n = tok->encode(rendered, false, true).size();
  const auto r = testing::run_kvpack("run -m '" + model +
                                     "' --chat --sys 'Be brief.' --temp 0 -n 1 -p 'Hello there'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr(fmt::format("prefill {:6d} tokens", n)));
  EXPECT_THAT(r.err, HasSubstr("decode       0 tokens"));

  // A template file replaces the GGUF's.
  const std::string tpl = input_file("plain.jinja", "{{ messages[-1].content }}");
  const auto f = testing::run_kvpack("run -m '" + model + "' --chat --chat-template-file '" + tpl +
                                     "' --temp 0 -n 1 -p 'Hello there'");
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_THAT(f.err, HasSubstr(fmt::format("prefill {:6d} tokens",
                                           tok->encode("Hello there", false, true).size())));
  EXPECT_THAT(f.err, HasSubstr("format: the chat template"));
}

TEST(ChatCli, RepliesStopAtEndOfGeneration) {
  KVPACK_SHARED_FILE(vocab, "models/arch/models/qwen2-f16.gguf");
  const std::string model = chat_model(vocab, "silent.gguf", kChatml, /*silent=*/true);
  const std::string turns = input_file("two.txt", "one\ntwo\n");
  const auto r =
      testing::run_kvpack("run -m '" + model + "' --chat --temp 0 -n 50 < '" + turns + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "\n\n");  // two empty replies
  EXPECT_THAT(r.err, HasSubstr("2 turns (2 ended by an end-of-generation token)"));
  EXPECT_THAT(r.err, HasSubstr("decode       0 tokens"));
}

TEST(ChatCli, BuiltinFormatWhenTheFileHasNoTemplate) {
  KVPACK_SHARED_FILE(vocab, "models/arch/models/qwen2-f16.gguf");
  const std::string model = chat_model(vocab, "notemplate.gguf", "");
  const auto r = testing::run_kvpack("run -m '" + model + "' --chat --temp 0 -n 2 -p hi");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("has no tokenizer.chat_template; using kvpack's built-in chatml"));
}

TEST(ChatCli, BadInputIsAOneLineError) {
  KVPACK_SHARED_FILE(qwen, "models/arch/models/qwen2-f16.gguf");
  KVPACK_SHARED_FILE(llama, "models/arch/models/llama-f16.gguf");
  const std::string with_macro =
      chat_model(qwen, "macro.gguf", "{% macro m() %}x{% endmacro %}{{ m() }}");
  // An unsupported template falls back to the built-in format, with a warning naming why.
  const auto warned = testing::run_kvpack("run -m '" + with_macro + "' --chat -n 1 -p hi");
  EXPECT_EQ(warned.status, 0) << warned.err;
  EXPECT_THAT(warned.err, HasSubstr("unsupported statement 'macro'"));

  const std::string no_markers = chat_model(llama, "nomarkers.gguf", "");
  testing::expect_one_line_error("run -m '" + no_markers + "' --chat -p hi",
                                 "no built-in chat format for architecture 'llama'");
  const std::string raising = chat_model(
      qwen, "raise.gguf",
      "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}");
  testing::expect_one_line_error("run -m '" + raising + "' --chat --sys x -p hi",
                                 "the chat template raised an error: no system");
  const std::string model = chat_model(qwen, "ok.gguf", kChatml);
  const std::string bad_tpl = input_file("bad.jinja", "{{ x | indent }}");
  testing::expect_one_line_error(
      "run -m '" + model + "' --chat --chat-template-file '" + bad_tpl + "' -p hi",
      "unsupported filter 'indent'");
  testing::expect_one_line_error("run -m '" + model + "' --chat-template-file x -p hi", "--chat");
  testing::expect_one_line_error("run -m '" + model + "' --sys x -p hi", "--chat");
  testing::expect_one_line_error(
      "run -m '" + model + "' --chat -c 16 -p 'a long question that needs many tokens'",
      "more than the context of 16 tokens");
}

}  // namespace
}  // namespace kvpack::model
