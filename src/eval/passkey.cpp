#include "eval/passkey.h"

#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "base/error.h"
#include "base/rng.h"
#include "base/timer.h"
#include "eval/policy_cost.h"
#include "model/session.h"

namespace kvpack::eval {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// One trial through one policy's cache: prefill (reusing cached whole pages of the prompt), then
// greedy decoding.
std::string answer(model::Forward& fwd, cache::Cache& cache, const model::Tokenizer& tok,
                   std::span<const int32_t> prompt, int max_tokens) {
  const cache::SeqId seq = cache.create();
  // All but the last prompt token may come from the cache: its logits are needed.
  const int64_t reused = cache.attach_prefix(seq, prompt.first(prompt.size() - 1));
  model::Session session(&tok,
                         {.sampling = {.temperature = 0},
                          .max_tokens = max_tokens,
                          .stop_when = passkey_answer_complete},
                         {prompt.begin(), prompt.end()});
  model::generate(fwd, seq, session, reused);
  const std::string text = session.text();
  cache.free(seq);
  return text;
}

}  // namespace

std::string passkey_key_line(int key) {
  return fmt::format("\nThe pass key is {0}. Remember it. {0} is the pass key.", key);
}

PasskeyPromptBuilder::PasskeyPromptBuilder(const model::Tokenizer& tokenizer) : tok_(tokenizer) {
  const auto encode = [&](std::string_view s) { return tok_.encode(s, false, false); };
  intro_ = encode(kPasskeyIntro);
  filler_ = encode(kPasskeyFiller);
  question_ = encode(kPasskeyQuestion);
}

int64_t PasskeyPromptBuilder::min_length(int key) const {
  const int64_t bos = tok_.bos() == model::kNoToken ? 0 : 1;
  return bos + static_cast<int64_t>(intro_.size() + question_.size() +
                                    tok_.encode(passkey_key_line(key), false, false).size());
}

PasskeyPrompt PasskeyPromptBuilder::build(int64_t length, double depth, int key) const {
  if (!(depth >= 0 && depth <= 100)) fail("passkey depth {} must be within 0..100 percent", depth);
  const std::vector<int32_t> key_line = tok_.encode(passkey_key_line(key), false, false);
  const int64_t fixed = min_length(key);
  if (length < fixed) {
    fail("passkey length {} is shorter than the prompt without filler ({} tokens)", length, fixed);
  }
  PasskeyPrompt p;
  const int64_t room = length - fixed, per = static_cast<int64_t>(filler_.size());
  p.fillers = static_cast<int>(room / per);
  p.partial_tokens = static_cast<int>(room % per);
  p.fillers_before = static_cast<int>(std::floor(depth / 100.0 * p.fillers + 0.5));
  p.key_line_tokens = static_cast<int64_t>(key_line.size());
  std::vector<int32_t>& t = p.tokens;
  t.reserve(static_cast<size_t>(length));
  if (tok_.bos() != model::kNoToken) t.push_back(tok_.bos());
  t.insert(t.end(), intro_.begin(), intro_.end());
  for (int i = 0; i < p.fillers_before; ++i) t.insert(t.end(), filler_.begin(), filler_.end());
  p.key_pos = static_cast<int64_t>(t.size());
  t.insert(t.end(), key_line.begin(), key_line.end());
  for (int i = p.fillers_before; i < p.fillers; ++i)
    t.insert(t.end(), filler_.begin(), filler_.end());
  t.insert(t.end(), filler_.begin(), filler_.begin() + p.partial_tokens);
  t.insert(t.end(), question_.begin(), question_.end());
  KVPACK_ASSERT(static_cast<int64_t>(t.size()) == length, "passkey prompt {} != {}", t.size(),
                length);
  return p;
}

std::string first_digit_run(std::string_view text) {
  const size_t start = text.find_first_of("0123456789");
  if (start == std::string_view::npos) return {};
  size_t end = start;
  while (end < text.size() && is_digit(text[end])) ++end;
  return std::string(text.substr(start, end - start));
}

bool passkey_answer_correct(std::string_view answer, int key) {
  return first_digit_run(answer) == std::to_string(key);
}

bool passkey_answer_complete(std::string_view text) {
  const size_t start = text.find_first_of("0123456789");
  if (start == std::string_view::npos) return false;
  size_t end = start;
  while (end < text.size() && is_digit(text[end])) ++end;
  return end < text.size();
}

int passkey_key(uint64_t seed, int64_t length, double depth, int trial) {
  Rng rng(mix_seed(mix_seed(seed, static_cast<uint64_t>(length)),
                   static_cast<uint64_t>(std::llround(depth * 1000)),
                   static_cast<uint64_t>(trial)));
  return 10000 + static_cast<int>(rng.below(90000));
}

void check_passkey_lengths(const model::Model& model, const PasskeyOptions& o) {
  const int64_t ctx = model.spec().n_ctx_train;
  // The last answer token is never run through the model.
  const int64_t max_length = ctx - (o.answer_tokens - 1);
  for (int64_t len : o.lengths) {
    if (len > max_length) {
      fail(
          "passkey length {} does not fit {}'s context of {} tokens with the {}-token answer: "
          "lengths up to {} fit",
          len, model.spec().name, ctx, o.answer_tokens, max_length);
    }
  }
  const PasskeyPromptBuilder builder(*model.tokenizer());
  const int64_t fixed = builder.min_length(99999);
  for (int64_t len : o.lengths) {
    if (len < fixed) {
      fail("passkey length {} is shorter than the prompt without filler ({} tokens)", len, fixed);
    }
  }
}

PasskeyReport evaluate_passkey(const model::Model& model,
                               const std::vector<format::KVPolicy>& policies,
                               const PasskeyOptions& o, ThreadPool& pool,
                               const Progress& progress) {
  const double start = now_seconds();
  check_passkey_lengths(model, o);
  if (o.lengths.empty() || o.depths.empty() || o.trials < 1) {
    fail("passkey: needs at least one length, one depth and one trial");
  }
  const model::ModelSpec& hp = model.spec();
  const model::Tokenizer& tok = *model.tokenizer();
  const PasskeyPromptBuilder builder(tok);
  int64_t longest = 0;
  for (int64_t len : o.lengths) longest = std::max(longest, len);
  const int64_t context = longest + o.answer_tokens;

  PasskeyReport rep;
  rep.model_name = hp.name;
  rep.model_context = hp.n_ctx_train;
  rep.options = o;
  rep.threads = pool.size();
  const int64_t total =
      static_cast<int64_t>(policies.size() * o.lengths.size() * o.depths.size()) * o.trials;
  int64_t done = 0;
  for (const format::KVPolicy& policy : policies) {
    policy.validate(hp.n_layers(), hp.head_dim_k, hp.head_dim_v, o.page_tokens);
    const double t0 = now_seconds();
    cache::Cache cache(model.cache_config(policy, context, o.page_tokens));
    model::Forward fwd(model, cache, pool, {.max_chunk = o.batch, .n_ctx = context});
    PolicyPasskey row;
    row.policy = policy;
    row.bytes_per_token = policy_bytes_per_token(hp, policy, o.page_tokens);
    row.bits_per_value = bits_per_value(hp, row.bytes_per_token);
    for (int64_t len : o.lengths) {
      for (double depth : o.depths) {
        PasskeyCell cell{len, depth, 0, {}};
        for (int t = 0; t < o.trials; ++t) {
          const int key = passkey_key(o.seed, len, depth, t);
          const PasskeyPrompt prompt = builder.build(len, depth, key);
          PasskeyTrial trial{key, answer(fwd, cache, tok, prompt.tokens, o.answer_tokens), false};
          trial.correct = passkey_answer_correct(trial.answer, key);
          cell.correct += trial.correct;
          cell.trials.push_back(std::move(trial));
          if (progress) progress(++done, total, policy_label(policy));
        }
        row.correct += cell.correct;
        row.total += o.trials;
        row.cells.push_back(std::move(cell));
      }
    }
    row.seconds = now_seconds() - t0;
    rep.rows.push_back(std::move(row));
  }
  rep.seconds = now_seconds() - start;
  return rep;
}

}  // namespace kvpack::eval
