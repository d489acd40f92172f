#include "model/session.h"

#include <algorithm>

#include "base/error.h"
#include "base/timer.h"
#include "kvpack/model.h"

namespace kvpack::model {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
    case FinishReason::kContext:
      return "length";
    case FinishReason::kNone:
      break;
  }
  return "";
}

Session::Session(const Tokenizer* tokenizer, GenerationConfig config, std::vector<int32_t> prompt)
    : tok_(tokenizer),
      config_(std::move(config)),
      sampler_(config_.sampling),
      tokens_(std::move(prompt)),
      prompt_size_(tokens_.size()) {
  if (tokens_.empty()) fail("generation: the prompt has no tokens");
  std::erase_if(config_.stop, [](const std::string& s) { return s.empty(); });
  if (tok_ != nullptr) {
    // The decoder sees the prompt first, so the continuation renders as it would after it (no
    // dummy-prefix space stripped from the first generated token).
    stream_ = std::make_unique<StreamDecoder>(*tok_);
    for (int32_t id : tokens_) stream_->push(id);
  }
  if (config_.context > 0 && static_cast<int64_t>(tokens_.size()) > config_.context) {
    fail("generation: the prompt is {} tokens, longer than the context of {}", tokens_.size(),
         config_.context);
  }
}

SessionStep Session::next(std::span<const float> logits) {
  KVPACK_ASSERT(!finished(), "Session::next after the session finished");
  SessionStep step;
  step.token = sampler_.sample(logits, tokens_);
  ++n_sampled_;
  if (tok_ != nullptr && !config_.ignore_eog && tok_->is_end_of_generation(step.token)) {
    finish(FinishReason::kStop, step);
    return step;
  }
  tokens_.push_back(step.token);
  if (stream_ != nullptr) pending_ += stream_->push(step.token);
  if (release_pending(step.text, /*final=*/false)) {
    reason_ = FinishReason::kStop;
    step.finished = true;
    step.reason = reason_;
    text_ += step.text;
    return step;
  }
  if (config_.stop_when && config_.stop_when(text_ + step.text + pending_)) {
    finish(FinishReason::kStop, step);
  } else if (config_.max_tokens >= 0 && n_sampled_ >= config_.max_tokens) {
    finish(FinishReason::kLength, step);
  } else if (config_.context > 0 && static_cast<int64_t>(tokens_.size()) >= config_.context) {
    finish(FinishReason::kContext, step);
  } else {
    text_ += step.text;
  }
  return step;
}

void Session::finish(FinishReason reason, SessionStep& step) {
  if (stream_ != nullptr) pending_ += stream_->flush();
  // A stop string completed by the flushed bytes still ends the text there.
  const bool stopped = release_pending(step.text, /*final=*/true);
  reason_ = stopped ? FinishReason::kStop : reason;
  step.finished = true;
  step.reason = reason_;
  text_ += step.text;
}

bool Session::release_pending(std::string& out, bool final) {
  // The earliest occurrence of any stop string. Text already released cannot be part of one:
  // every suffix of the text that could still begin a stop string is held in pending_.
  size_t hit = std::string::npos;
  for (const std::string& s : config_.stop) hit = std::min(hit, pending_.find(s));
  if (hit != std::string::npos) {
    out += pending_.substr(0, hit);
    pending_.clear();
    return true;
  }
  size_t hold = 0;
  if (!final) {
    // The longest suffix of pending_ that is a proper prefix of a stop string stays back.
    for (const std::string& s : config_.stop) {
      for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n) {
        if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
          hold = n;
          break;
        }
      }
    }
  }
  out += pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return false;
}

GenerationTimings generate(Forward& fwd, cache::SeqId seq, Session& session, int64_t cached,
                           const std::function<void(const SessionStep&)>& on_step,
                           const std::function<void()>& on_prefill) {
  GenerationTimings t;
  const std::span<const int32_t> rest = session.prompt().subspan(static_cast<size_t>(cached));
  double start = now_seconds();
  std::span<const float> logits = fwd.eval(seq, rest);
  t.prefill_s = now_seconds() - start;
  t.prefill_tokens = static_cast<int64_t>(rest.size());
  if (on_prefill) on_prefill();
  if (session.config().max_tokens == 0) return t;
  for (;;) {
    const SessionStep step = session.next(logits);
    if (on_step) on_step(step);
    if (step.finished) break;
    start = now_seconds();
    logits = fwd.eval(seq, {&step.token, 1});
    t.decode_s += now_seconds() - start;
    ++t.decode_tokens;
  }
  return t;
}

}  // namespace kvpack::model
