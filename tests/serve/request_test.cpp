// The request parsers: every OpenAI field kvpack reads, each kind of mistake as a 400 naming
// its field, and thousands of random and mutated documents producing nothing but RequestErrors
// with a 4xx status (the libFuzzer target fuzz/serve_request_fuzzer.cpp goes further).
#include "serve/request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mutate.h"

namespace kvpack::serve {
namespace {

// The field a parse error names, or "<ok>" when the body parses.
std::string error_param(std::string_view body, Endpoint ep = Endpoint::kCompletions) {
  try {
    parse_completion_request(body, ep);
    return "<ok>";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.type(), "invalid_request_error");
    EXPECT_NE(std::string(e.what()), "");
    return e.param();
  }
}

TEST(Request, ReadsEveryField) {
  const CompletionRequest r = parse_completion_request(
      R"({"model": "m", "prompt": "Hi", "max_tokens": 9, "temperature": 0.5, "top_p": 0.9,
          "top_k": 7, "min_p": 0.1, "repeat_penalty": 1.2, "repeat_last_n": 32, "seed": 42,
          "stop": ["a", "b"], "stream": true, "stream_options": {"include_usage": true},
          "cache_prompt": false, "ignore_eos": true, "kv": "k=q8,v=q8", "n": 1, "user": "u",
          "presence_penalty": 0, "logprobs": null})",
      Endpoint::kCompletions);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Hi");
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.2f);
  EXPECT_EQ(r.sampling.repeat_last_n, 32);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream && r.include_usage && r.ignore_eos);
  EXPECT_FALSE(r.cache_prompt);
  EXPECT_EQ(r.kv, "k=q8,v=q8");

  const CompletionRequest c = parse_completion_request(
      R"({"messages": [{"role": "developer", "content": "S"},
                       {"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}],
          "max_completion_tokens": 3, "stop": "x", "seed": -1})",
      Endpoint::kChat);
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0].role, "system");
  EXPECT_EQ(c.messages[1].content, "ab");
  EXPECT_EQ(c.max_tokens, 3);
  EXPECT_EQ(c.stop, std::vector<std::string>{"x"});
  EXPECT_FALSE(c.seed.has_value());

  EXPECT_EQ(parse_completion_request(R"({"prompt": [1, 2, 3]})", Endpoint::kCompletions).prompt_ids,
            (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["one"]})", Endpoint::kCompletions).prompt,
            "one");
  // null is the default, as OpenAI reads it.
  EXPECT_EQ(
      parse_completion_request(R"({"prompt": "", "max_tokens": null})", Endpoint::kCompletions)
          .max_tokens,
      -1);
}

TEST(Request, MistakesNameTheirField) {
  EXPECT_EQ(error_param(R"({"prompt": "x", "max_tokens": "5"})"), "max_tokens");
  EXPECT_EQ(error_param(R"({"prompt": "x", "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(error_param(R"({"prompt": "x", "max_tokens": 1.5})"), "max_tokens");
  EXPECT_EQ(error_param(R"({"prompt": "x", "temperature": "hot"})"), "temperature");
  EXPECT_EQ(error_param(R"({"prompt": "x", "top_p": 1.5})"), "top_p");
  EXPECT_EQ(error_param(R"({"prompt": "x", "top_k": -1})"), "top_k");
  EXPECT_EQ(error_param(R"({"prompt": "x", "seed": 1e30})"), "seed");
  EXPECT_EQ(error_param(R"({"prompt": "x", "stop": 5})"), "stop");
  EXPECT_EQ(error_param(R"({"prompt": "x", "stop": ["a", 1]})"), "stop[1]");
  EXPECT_EQ(error_param(R"({"prompt": "x", "n": 3})"), "n");
  EXPECT_EQ(error_param(R"({"prompt": "x", "stream": "yes"})"), "stream");
  EXPECT_EQ(error_param(R"({"prompt": "x", "stream_options": {"x": 1}})"), "stream_options.x");
  EXPECT_EQ(error_param(R"({"prompt": "x", "frequency_penalty": 0.5})"), "frequency_penalty");
  EXPECT_EQ(error_param(R"({"prompt": "x", "logit_bias": {}})"), "logit_bias");
  EXPECT_EQ(error_param(R"({"prompt": "x", "messages": []})"), "messages");  // not on completions
  EXPECT_EQ(error_param(R"({"prompt": {"a": 1}})"), "prompt");
  EXPECT_EQ(error_param(R"({"prompt": [1, -2]})"), "prompt[1]");
  EXPECT_EQ(error_param(R"({"max_tokens": 3})"), "prompt");
  EXPECT_EQ(error_param(R"({"prompt": "x",})"), "");
  EXPECT_EQ(error_param("[]"), "");
  EXPECT_EQ(error_param(""), "");
  EXPECT_EQ(error_param(std::string(100, '[') + std::string(100, ']')), "");
  const Endpoint chat = Endpoint::kChat;
  EXPECT_EQ(error_param(R"({"messages": "hi"})", chat), "messages");
  EXPECT_EQ(error_param(R"({"messages": []})", chat), "messages");
  EXPECT_EQ(error_param(R"({"messages": [{"content": "x"}]})", chat), "messages[0].role");
  EXPECT_EQ(error_param(R"({"messages": [{"role": "tool", "content": "x"}]})", chat),
            "messages[0].role");
  EXPECT_EQ(
      error_param(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", chat),
      "messages[0].content[0].type");
  EXPECT_EQ(
      error_param(R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", chat),
      "messages[0].tool_calls");
  EXPECT_EQ(error_param(R"({"messages": [{"role": "user", "content": "x"}], "prompt": "p"})", chat),
            "prompt");
  EXPECT_EQ(error_param(R"({"prompt": "x"})", chat), "prompt");
}

TEST(Request, TokenizeAndDetokenize) {
  const TokenizeRequest t =
      parse_tokenize_request(R"({"content": "x", "add_special": true, "with_pieces": true})");
  EXPECT_EQ(t.content, "x");
  EXPECT_TRUE(t.add_special && t.with_pieces && t.parse_special);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [3, 4]})").tokens, (std::vector<int32_t>{3, 4}));
  EXPECT_THROW(parse_tokenize_request(R"({"content": 1})"), RequestError);
  EXPECT_THROW(parse_tokenize_request(R"({})"), RequestError);
  EXPECT_THROW(parse_detokenize_request(R"({"tokens": [1.5]})"), RequestError);
  EXPECT_THROW(parse_detokenize_request(R"({"tokens": [1], "x": 2})"), RequestError);
}

// Random bytes and mutations of valid documents (bytes flipped, inserted, deleted, values
// swapped for other JSON values) through every parser: only RequestErrors with a 4xx status.
TEST(Request, MutatedDocumentsOnlyGive4xx) {
  Rng rng(12345);
  int parsed = 0, refused = 0;
  for (int i = 0; i < 6000; ++i) {
    const auto& seeds = testing::request_seeds();
    const std::string doc = testing::mutate(seeds[rng.below(seeds.size())], rng);
    for (int p = 0; p < 4; ++p) {
      try {
        if (p < 2) parse_completion_request(doc, p == 0 ? Endpoint::kCompletions : Endpoint::kChat);
        if (p == 2) parse_tokenize_request(doc);
        if (p == 3) parse_detokenize_request(doc);
        ++parsed;
      } catch (const RequestError& e) {
        ASSERT_GE(e.status(), 400) << doc;
        ASSERT_LT(e.status(), 500) << doc;
        ++refused;
      }
    }
  }
  EXPECT_GT(parsed, 100);  // some mutations stay valid: the loop reaches past the first check
  EXPECT_GT(refused, 10000);
}

}  // namespace
}  // namespace kvpack::serve
