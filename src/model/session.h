// Generation for one sequence: sampling, stop rules and streaming detokenization (src/model).
// `kvpack run`, `kvpack demo`, `kvpack eval passkey` and the server all generate through it.
//
//   Session s(tokenizer, {.sampling = ..., .max_tokens = 128, .stop = {"\n\n"}}, prompt);
//   std::span<const float> logits = fwd.eval(seq, s.prompt());
//   for (;;) {
//     const SessionStep step = s.next(logits);  // samples a token, applies the stop rules
//     emit(step.text);
//     if (step.finished) break;
//     logits = fwd.eval(seq, {&step.token, 1});
//   }
//
// A Session holds no model and no cache: its driver runs the forward pass (one sequence here,
// a batch of them in the server) and hands the logits in. generate() is the one-sequence driver.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpack/cache.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace kvpack::model {

class Forward;

enum class FinishReason {
  kNone,     // still generating
  kStop,     // an end-of-generation token, a stop string or the caller's stop_when
  kLength,   // max_tokens generated
  kContext,  // the sequence reached the context limit
};

// "stop", "length" (OpenAI's finish_reason; the context limit is "length" too), "" for kNone.
std::string_view finish_reason_name(FinishReason reason);

struct GenerationConfig {
  SamplerConfig sampling;
  // Tokens to sample at most, the end-of-generation token included; < 0: no limit.
  int max_tokens = -1;
  // Generation ends before the first occurrence of any of these in the text; the text from
  // there on is never emitted (OpenAI's `stop`). Empty strings are ignored.
  std::vector<std::string> stop;
  // Keep sampling past the vocabulary's end-of-generation tokens (they render as nothing).
  bool ignore_eog = false;
  // Longest sequence, prompt included; 0: no limit. The token that fills it ends generation.
  int64_t context = 0;
  // Generation also ends after the token with which this returns true for the text so far.
  std::function<bool(std::string_view text)> stop_when;
};

// What one next() call produced.
struct SessionStep {
  int32_t token = kNoToken;  // the sampled token
  std::string text;          // text that became final with it (may be empty)
  bool finished = false;     // no further next(): the token needs no forward pass
  FinishReason reason = FinishReason::kNone;
};

class Session {
 public:
  // `tokenizer` may be null (ids only: no text, stop strings never match). `prompt` must not
  // be empty; it seeds the repetition penalty's history and the detokenizer, so the text is the
  // prompt's continuation exactly as decode(prompt + generated) renders it.
  Session(const Tokenizer* tokenizer, GenerationConfig config, std::vector<int32_t> prompt);

  // Samples the next token from `logits` [n_vocab] (of the last token in tokens()) and applies
  // the stop rules. Must not be called once finished().
  SessionStep next(std::span<const float> logits);

  std::span<const int32_t> prompt() const { return {tokens_.data(), prompt_size_}; }
  // Prompt and generated tokens (an end-of-generation token that stopped it is not included).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Tokens sampled so far, the end-of-generation token included.
  int64_t n_sampled() const { return n_sampled_; }
  // Every text piece next() returned, concatenated.
  const std::string& text() const { return text_; }
  bool finished() const { return reason_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return reason_; }
  const GenerationConfig& config() const { return config_; }

 private:
  // Moves pending text that can no longer start a stop string into `out`; true when a stop
  // string was found (the text from it on is dropped).
  bool release_pending(std::string& out, bool final);
  void finish(FinishReason reason, SessionStep& step);

  const Tokenizer* tok_;
  GenerationConfig config_;
  Sampler sampler_;
  std::vector<int32_t> tokens_;
  size_t prompt_size_ = 0;
  int64_t n_sampled_ = 0;
  std::unique_ptr<StreamDecoder> stream_;
  std::string pending_;  // decoded text held back because it may begin a stop string
  std::string text_;
  FinishReason reason_ = FinishReason::kNone;
};

// Time spent by generate(), split as `kvpack run` reports it.
struct GenerationTimings {
  int64_t prefill_tokens = 0;
  double prefill_s = 0;
  int64_t decode_tokens = 0;
  double decode_s = 0;
};

// Runs `session` to its end on one sequence: prompt()[cached..] through `fwd` (the first
// `cached` prompt tokens are already in the sequence, e.g. from Cache::attach_prefix), then one
// forward pass per sampled token that is not the last. on_prefill runs once the prompt is in
// the cache; on_step sees every step. With max_tokens 0 only the prompt runs. The prompt must
// have at least one token after `cached` (attach all but the last).
GenerationTimings generate(Forward& fwd, cache::SeqId seq, Session& session, int64_t cached = 0,
                           const std::function<void(const SessionStep&)>& on_step = {},
                           const std::function<void()>& on_prefill = {});

}  // namespace kvpack::model
