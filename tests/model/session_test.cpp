// Session: the generation loop's rules (stop strings held back across tokens, end-of-generation
// tokens, max_tokens, the context, stop_when), driven by one-hot logits through the probe
// model's tokenizer, and generate() against a hand-written loop over the real model.
#include "model/session.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/error.h"

#include "kvpack/model.h"
#include "probe_model.h"

namespace kvpack::model {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KVPACK_PROBE_MODEL(path);
    model_ = Model::load(path.string());
    tok_ = model_->tokenizer();
    ASSERT_NE(tok_, nullptr);
  }
  // Logits that make greedy sampling pick `id`.
  std::vector<float> pick(int32_t id) const {
    std::vector<float> l(static_cast<size_t>(tok_->n_vocab()), 0.0f);
    l[static_cast<size_t>(id)] = 10.0f;
    return l;
  }
  // The ids of " " + text: SentencePiece adds the leading space (its dummy prefix).
  std::vector<int32_t> ids(std::string_view text) const { return tok_->encode(text, false, false); }
  std::vector<int32_t> prompt() const { return tok_->encode("Once upon a time", true, false); }
  // Feeds `forced` tokens one by one; returns the concatenated text and the steps' count.
  std::string feed(Session& s, const std::vector<int32_t>& forced, int* steps = nullptr) {
    std::string text;
    int n = 0;
    for (int32_t id : forced) {
      const SessionStep step = s.next(pick(id));
      EXPECT_EQ(step.token, id);
      text += step.text;
      ++n;
      if (step.finished) break;
    }
    if (steps != nullptr) *steps = n;
    return text;
  }
  static GenerationConfig greedy() {
    GenerationConfig c;
    c.sampling.temperature = 0;
    return c;
  }

  std::unique_ptr<Model> model_;
  const Tokenizer* tok_ = nullptr;
};

TEST_F(SessionTest, TextIsTheContinuationAsDecodeRendersIt) {
  const std::vector<int32_t> p = prompt();
  Session s(tok_, greedy(), p);
  const std::vector<int32_t> gen = ids("there was a cat.\nIt sat.");
  const std::string text = feed(s, gen);
  std::vector<int32_t> all = p;
  all.insert(all.end(), gen.begin(), gen.end());
  EXPECT_EQ(tok_->decode(p) + text, tok_->decode(all));
  EXPECT_EQ(text, " there was a cat.\nIt sat.");
  EXPECT_EQ(s.text(), text);
  EXPECT_FALSE(s.finished());
  EXPECT_EQ(s.tokens().size(), p.size() + gen.size());
}

TEST_F(SessionTest, StopStringIsHeldBackAcrossTokensAndCut) {
  GenerationConfig c = greedy();
  c.stop = {"cat.", "", "zebra"};
  Session s(tok_, c, prompt());
  std::string streamed;
  for (int32_t id : ids("there was a cat. It sat.")) {
    const SessionStep step = s.next(pick(id));
    // "cat" is held back until "." shows it is the stop string: no piece ever carries it.
    EXPECT_EQ(step.text.find('c'), std::string::npos) << step.text;
    streamed += step.text;
    if (step.finished) {
      EXPECT_EQ(step.reason, FinishReason::kStop);
      break;
    }
  }
  EXPECT_EQ(streamed, " there was a ");
  EXPECT_EQ(s.text(), " there was a ");
  EXPECT_EQ(s.finish_reason(), FinishReason::kStop);
}

TEST_F(SessionTest, PartialStopStringIsReleasedWhenItDoesNotComplete) {
  GenerationConfig c = greedy();
  c.stop = {"cat!"};
  c.max_tokens = 100;
  Session s(tok_, c, prompt());
  const std::string text = feed(s, ids("a cat. a cat"));
  EXPECT_EQ(text, " a cat. a ");  // "cat" may still become "cat!"
  // max_tokens ends it: the held text is released.
  GenerationConfig c2 = c;
  c2.max_tokens = static_cast<int>(ids("a cat. a cat").size());
  Session s2(tok_, c2, prompt());
  EXPECT_EQ(feed(s2, ids("a cat. a cat")), " a cat. a cat");
  EXPECT_EQ(s2.finish_reason(), FinishReason::kLength);
}

TEST_F(SessionTest, EndOfGenerationStopsWithoutTextOrHistory) {
  Session s(tok_, greedy(), prompt());
  feed(s, ids("hi"));
  const size_t before = s.tokens().size();
  const SessionStep step = s.next(pick(tok_->eos()));
  EXPECT_TRUE(step.finished);
  EXPECT_EQ(step.reason, FinishReason::kStop);
  EXPECT_EQ(step.text, "");
  EXPECT_EQ(s.tokens().size(), before);
  EXPECT_EQ(s.n_sampled(), static_cast<int64_t>(ids("hi").size()) + 1);

  GenerationConfig c = greedy();
  c.ignore_eog = true;
  Session s2(tok_, c, prompt());
  EXPECT_FALSE(s2.next(pick(tok_->eos())).finished);
}

TEST_F(SessionTest, MaxTokensAndContextEndWithLength) {
  GenerationConfig c = greedy();
  c.max_tokens = 3;
  Session s(tok_, c, prompt());
  int steps = 0;
  feed(s, ids("there was a cat who sat"), &steps);
  EXPECT_EQ(steps, 3);
  EXPECT_EQ(s.finish_reason(), FinishReason::kLength);

  GenerationConfig c2 = greedy();
  c2.context = static_cast<int64_t>(prompt().size()) + 2;
  Session s2(tok_, c2, prompt());
  feed(s2, ids("there was a cat who sat"), &steps);
  EXPECT_EQ(steps, 2);
  EXPECT_EQ(s2.finish_reason(), FinishReason::kContext);
  EXPECT_EQ(finish_reason_name(FinishReason::kContext), "length");

  GenerationConfig c3 = greedy();
  c3.context = 2;
  EXPECT_THROW(Session(tok_, c3, prompt()), Error);
  EXPECT_THROW(Session(tok_, greedy(), {}), Error);
}

TEST_F(SessionTest, StopWhenSeesTheTextSoFar) {
  GenerationConfig c = greedy();
  c.stop_when = [](std::string_view text) { return text.find('7') != std::string_view::npos; };
  Session s(tok_, c, prompt());
  EXPECT_EQ(feed(s, ids("12734 5")), " 127");
  EXPECT_EQ(s.finish_reason(), FinishReason::kStop);
}

// generate() on the real model equals the loop it replaces: eval, sample, eval each token but
// the last, with the same seeded sampler.
TEST_F(SessionTest, GenerateMatchesAHandWrittenLoop) {
  const std::vector<int32_t> p = prompt();
  GenerationConfig c;
  c.sampling = {.temperature = 0.9f, .seed = 7};
  c.max_tokens = 24;
  ThreadPool pool(2);
  const format::KVPolicy policy = format::KVPolicy::parse("k=q8,v=q8");

  cache::Cache cache(model_->cache_config(policy, 256));
  Forward fwd(*model_, cache, pool);
  Session s(tok_, c, p);
  int prefilled = 0, steps = 0;
  const GenerationTimings t = generate(
      fwd, cache.create(), s, 0, [&](const SessionStep&) { ++steps; }, [&] { ++prefilled; });
  EXPECT_EQ(prefilled, 1);
  EXPECT_EQ(t.prefill_tokens, static_cast<int64_t>(p.size()));
  EXPECT_EQ(t.decode_tokens, steps - 1);

  cache::Cache cache2(model_->cache_config(policy, 256));
  Forward fwd2(*model_, cache2, pool);
  const cache::SeqId seq = cache2.create();
  Sampler sampler(c.sampling);
  std::vector<int32_t> history = p;
  std::span<const float> logits = fwd2.eval(seq, p);
  for (int i = 0; i < c.max_tokens; ++i) {
    const int32_t id = sampler.sample(logits, history);
    if (tok_->is_end_of_generation(id)) break;
    history.push_back(id);
    if (i + 1 == c.max_tokens) break;
    logits = fwd2.eval(seq, {&id, 1});
  }
  EXPECT_EQ(s.tokens(), history);
  EXPECT_EQ(cache.n_tokens(0), cache2.n_tokens(seq));
}

}  // namespace
}  // namespace kvpack::model
