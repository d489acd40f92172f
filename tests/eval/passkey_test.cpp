// The passkey prompt builder against docs/passkey.md (segments, exact lengths, key depth), the
// answer parsing, key drawing, the context check and a short run on stories260K.
#include "eval/passkey.h"

#include <gtest/gtest.h>

#include <set>

#include "base/error.h"
#include "stories.h"

namespace kvpack::eval {
namespace {

std::vector<int32_t> repeat(const std::vector<int32_t>& seg, int times) {
  std::vector<int32_t> out;
  for (int i = 0; i < times; ++i) out.insert(out.end(), seg.begin(), seg.end());
  return out;
}

TEST(PasskeyAnswer, FirstRunOfDigits) {
  EXPECT_EQ(first_digit_run(" 12345. Remember"), "12345");
  EXPECT_EQ(first_digit_run("The key is 4 and 12345"), "4");
  EXPECT_EQ(first_digit_run("no digits"), "");
  EXPECT_EQ(first_digit_run("x98765"), "98765");
  EXPECT_TRUE(passkey_answer_correct(" 12345.", 12345));
  EXPECT_TRUE(passkey_answer_correct(" 12345", 12345));
  EXPECT_TRUE(passkey_answer_correct("\n12345 is the pass key", 12345));
  EXPECT_FALSE(passkey_answer_correct(" 123456", 12345));  // a longer number is wrong
  EXPECT_FALSE(passkey_answer_correct(" 1234 5", 12345));  // the first run decides
  EXPECT_FALSE(passkey_answer_correct(" 54321", 12345));
  EXPECT_FALSE(passkey_answer_correct("", 12345));
  EXPECT_FALSE(passkey_answer_correct(" 0 12345", 12345));
}

TEST(PasskeyAnswer, KeysAreSeededFiveDigitNumbers) {
  std::set<int> keys;
  for (int t = 0; t < 200; ++t) {
    const int k = passkey_key(7, 1024, 50, t);
    EXPECT_GE(k, 10000);
    EXPECT_LE(k, 99999);
    keys.insert(k);
  }
  EXPECT_GT(keys.size(), 190u);
  EXPECT_EQ(passkey_key(7, 1024, 50, 3), passkey_key(7, 1024, 50, 3));
  EXPECT_NE(passkey_key(7, 1024, 50, 3), passkey_key(8, 1024, 50, 3));
  EXPECT_NE(passkey_key(7, 1024, 25, 3), passkey_key(7, 1024, 50, 3));
  EXPECT_EQ(passkey_key_line(12345),
            "\nThe pass key is 12345. Remember it. 12345 is the pass key.");
}

TEST(PasskeyPrompt, ExactLengthsAndKeyDepthsOnStories) {
  KVPACK_STORIES(s, 0);
  const model::Tokenizer& tok = *s.model->tokenizer();
  const PasskeyPromptBuilder b(tok);
  // Each segment on its own, no BOS (docs/passkey.md).
  const auto enc = [&](std::string_view t) { return tok.encode(t, false, false); };
  const std::vector<int32_t> intro = enc(kPasskeyIntro), filler = enc(kPasskeyFiller),
                             question = enc(kPasskeyQuestion);
  ASSERT_EQ(b.filler_tokens(), static_cast<int64_t>(filler.size()));
  const int key = 40213;
  const std::vector<int32_t> key_line = enc(passkey_key_line(key));
  const int64_t fixed = 1 + static_cast<int64_t>(intro.size() + key_line.size() + question.size());
  EXPECT_EQ(b.min_length(key), fixed);
  const int64_t per = b.filler_tokens();
  for (int64_t length : {fixed, fixed + 1, fixed + per - 1, fixed + per, int64_t{300}, int64_t{511},
                         int64_t{2000}}) {
    for (double depth : {0.0, 10.0, 25.0, 50.0, 75.0, 100.0}) {
      SCOPED_TRACE(::testing::Message() << "length " << length << " depth " << depth);
      const PasskeyPrompt p = b.build(length, depth, key);
      ASSERT_EQ(static_cast<int64_t>(p.tokens.size()), length);
      const int n = static_cast<int>((length - fixed) / per);
      const int r = static_cast<int>((length - fixed) % per);
      const int a = static_cast<int>(std::floor(depth / 100 * n + 0.5));
      EXPECT_EQ(p.fillers, n);
      EXPECT_EQ(p.fillers_before, a);
      EXPECT_EQ(p.partial_tokens, r);
      // [BOS][intro][filler x a][key line][filler x (n - a)][filler[:r]][question]
      std::vector<int32_t> want = {tok.bos()};
      for (const auto& seg : {intro, repeat(filler, a)})
        want.insert(want.end(), seg.begin(), seg.end());
      EXPECT_EQ(p.key_pos, static_cast<int64_t>(want.size()));
      want.insert(want.end(), key_line.begin(), key_line.end());
      const std::vector<int32_t> rest = repeat(filler, n - a);
      want.insert(want.end(), rest.begin(), rest.end());
      want.insert(want.end(), filler.begin(), filler.begin() + r);
      want.insert(want.end(), question.begin(), question.end());
      EXPECT_EQ(p.tokens, want);
      // The key line sits at key_pos and reads as the spec's text.
      const std::vector<int32_t> at(p.tokens.begin() + p.key_pos,
                                    p.tokens.begin() + p.key_pos + p.key_line_tokens);
      EXPECT_NE(tok.decode(at, {.strip_prefix_space = false})
                    .find("The pass key is 40213. Remember it. 40213 is the pass key."),
                std::string::npos);
    }
  }
  // Depth 0 puts the key right after the intro; 100 after every whole filler group.
  const PasskeyPrompt p0 = b.build(600, 0, key), p100 = b.build(600, 100, key);
  EXPECT_EQ(p0.key_pos, 1 + static_cast<int64_t>(intro.size()));
  EXPECT_EQ(p100.key_pos, 1 + static_cast<int64_t>(intro.size()) + p100.fillers * per);
  const std::string text = tok.decode(p0.tokens);
  EXPECT_EQ(text.rfind("What is the pass key? The pass key is"), text.size() - 37);
  EXPECT_THROW(b.build(fixed - 1, 50, key), Error);
  EXPECT_THROW(b.build(600, 101, key), Error);
}

TEST(PasskeyPrompt, LengthsBeyondTheContextAreRefused) {
  KVPACK_STORIES(s, 0);
  PasskeyOptions o;
  const int64_t ctx = s.model->spec().n_ctx_train;  // 2048 in the GGUF's metadata
  o.lengths = {1024, ctx - o.answer_tokens + 1};
  EXPECT_NO_THROW(check_passkey_lengths(*s.model, o));
  o.lengths = {1024, ctx};
  try {
    check_passkey_lengths(*s.model, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(ctx - o.answer_tokens + 1)),
              std::string::npos);
  }
  o.lengths = {20};
  EXPECT_THROW(check_passkey_lengths(*s.model, o), Error);
}

TEST(PasskeyRun, GridPerPolicyOnStories) {
  KVPACK_STORIES(s, 0);
  PasskeyOptions o;
  o.lengths = {170, 240};
  o.depths = {0, 100};
  o.trials = 2;
  ThreadPool pool(2);
  const std::vector<format::KVPolicy> policies = {
      format::KVPolicy(), format::KVPolicy(format::FormatId::q8, format::FormatId::q8)};
  const PasskeyReport r = evaluate_passkey(*s.model, policies, o, pool);
  ASSERT_EQ(r.rows.size(), 2u);
  for (const PolicyPasskey& p : r.rows) {
    ASSERT_EQ(p.cells.size(), 4u);
    EXPECT_EQ(p.total, 8);
    for (const PasskeyCell& c : p.cells) {
      ASSERT_EQ(c.trials.size(), 2u);
      for (const PasskeyTrial& t : c.trials) {
        EXPECT_EQ(t.correct, passkey_answer_correct(t.answer, t.key));
        EXPECT_FALSE(t.answer.empty());
      }
    }
  }
  // Same keys for every policy.
  EXPECT_EQ(r.rows[0].cells[3].trials[1].key, r.rows[1].cells[3].trials[1].key);
  const Report rep = render_passkey(r, "kvpack eval passkey ...");
  EXPECT_NE(rep.text.find("length"), std::string::npos);
  EXPECT_EQ(rep.json["results"][0]["cells"].size(), 4u);
}

}  // namespace
}  // namespace kvpack::eval
