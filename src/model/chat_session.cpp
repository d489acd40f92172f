#include "model/chat_session.h"

#include "base/error.h"
#include "base/timer.h"

namespace kvpack::model {

ChatSession::ChatSession(Forward& forward, cache::Cache& cache, cache::SeqId seq, Sampler& sampler,
                         const ChatFormat& format, const Tokenizer& tok, ChatOptions options)
    : forward_(forward),
      cache_(cache),
      seq_(seq),
      sampler_(sampler),
      tok_(tok),
      options_(std::move(options)),
      chat_(format, tok, options_.system_prompt) {}

ChatReply ChatSession::reply(std::string user_text,
                             const std::function<void(std::string_view)>& on_text) {
  ChatReply r;
  const Conversation before = chat_;
  const ChatTurn turn = chat_.add_user(std::move(user_text));
  const std::vector<int32_t>& ids = chat_.tokens();
  if (static_cast<int64_t>(ids.size()) > options_.context) {
    chat_ = before;
    fail(
        "the conversation needs {} tokens with this turn, more than the context of {} tokens "
        "(-c)",
        ids.size(), options_.context);
  }
  // The cache may hold less than the turn keeps: a reply cut by the token limit leaves its last
  // token unevaluated.
  const auto keep = static_cast<int64_t>(std::min<size_t>(turn.keep, static_cast<size_t>(cached_)));
  std::span<const float> logits;
  try {
    if (cache_.n_tokens(seq_) > keep) cache_.truncate(seq_, keep);
    cached_ = keep;
    const double start = now_seconds();
    logits = forward_.eval(seq_, std::span(ids).subspan(static_cast<size_t>(keep)));
    r.prompt_s = now_seconds() - start;
  } catch (...) {
    chat_ = before;
    throw;
  }
  cached_ = static_cast<int64_t>(ids.size());
  r.prompt_tokens = cached_ - keep;
  r.kept_tokens = keep;

  StreamDecoder stream(tok_, chat_output_options());
  const int limit = options_.max_reply_tokens;
  for (int i = 0; limit < 0 || i < limit; ++i) {
    const int32_t id = sampler_.sample(logits, chat_.tokens());
    if (tok_.is_end_of_generation(id)) {
      r.end_of_generation = true;
      break;
    }
    chat_.add_generated(id);
    ++r.generated;
    on_text(stream.push(id));
    // The last token needs no forward pass now: the next turn evaluates it.
    const bool full = static_cast<int64_t>(chat_.tokens().size()) >= options_.context;
    if (i + 1 == limit || full) break;
    const double start = now_seconds();
    logits = forward_.eval(seq_, {&id, 1});
    r.decode_s += now_seconds() - start;
    ++r.decode_evals;
    ++cached_;
  }
  on_text(stream.flush());
  r.text = chat_.end_reply();
  return r;
}

}  // namespace kvpack::model
