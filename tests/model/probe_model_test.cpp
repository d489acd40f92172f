// The repository's probe model (models/probe.gguf, card in models/README.md): it loads with the
// shape its card states, and greedy generation is deterministic. Its passkey retrieval is tested
// in tests/eval/probe_passkey_test.cpp.
#include <gtest/gtest.h>

#include <vector>

#include "kvpack/model.h"
#include "model/sampler.h"
#include "probe_model.h"

namespace kvpack::model {
namespace {

TEST(ProbeModel, LoadsWithTheCardsShape) {
  KVPACK_PROBE_MODEL(path);
  const auto model = Model::load(path.string());
  const ModelSpec& hp = model->spec();
  EXPECT_EQ(hp.traits->name, "llama");
  EXPECT_EQ(hp.name, "kvpack-probe");
  EXPECT_EQ(hp.n_layers(), 4);
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_heads(), 4);
  EXPECT_EQ(hp.n_kv_heads(), 2);
  EXPECT_EQ(hp.head_dim_k, 64);
  EXPECT_EQ(hp.head_dim_v, 64);
  EXPECT_EQ(hp.n_ff, 768);
  EXPECT_EQ(hp.n_vocab, 1024);
  EXPECT_EQ(hp.n_ctx_train, 4224);
  EXPECT_FLOAT_EQ(hp.norm_eps, 1e-5f);
  EXPECT_EQ(hp.layers[0].rope.n_dims, 64);
  EXPECT_EQ(hp.layers[0].rope.freq_base, 10000.0);
  EXPECT_EQ(hp.layers[0].rope.ordering, RopeOrdering::interleaved);
  const Weights& w = model->weights();
  EXPECT_TRUE(w.tied_output);  // no output.weight: the embedding is the output projection
  EXPECT_EQ(w.token_embd.type, GgmlType::F16);
  ASSERT_EQ(w.layers.size(), 4u);
  EXPECT_EQ(w.layers[3].wk.type, GgmlType::F16);
  EXPECT_EQ(w.layers[3].wk.rows, 128);  // 2 KV heads x 64
  EXPECT_EQ(w.layers[3].ffn_down.cols, 768);
  EXPECT_EQ(model->file().tensors().size(), 38u);  // 1 + 4 x 9 + output_norm
  // 3,410,176 parameters, as the card counts them.
  int64_t params = 0;
  for (const auto& t : model->file().tensors()) params += t.n_elements();
  EXPECT_EQ(params, 3410176);
  const Tokenizer* tok = model->tokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->n_vocab(), 1024);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->add_bos());
  // Digits never merge: a passkey is one token per digit (models/README.md).
  EXPECT_EQ(tok->encode("48213", false, false).size(), 6u);  // the dummy-prefix space, 5 digits
  EXPECT_EQ(tok->decode(tok->encode("The pass key is 48213.", true, false)),
            "The pass key is 48213.");
}

// Greedy ids of `prompt` plus n tokens through a fresh f16 cache and a pool of `threads`.
std::vector<int32_t> greedy(const Model& model, const std::string& prompt, int n, int threads) {
  ThreadPool pool(threads);
  cache::Cache cache(model.cache_config(format::KVPolicy::parse("k=f16,v=f16"), 512));
  Forward fwd(model, cache, pool, {.max_chunk = 64});
  const cache::SeqId seq = cache.create();
  std::vector<int32_t> ids = model.tokenizer()->encode(prompt, true, false);
  std::span<const float> logits = fwd.eval(seq, ids);
  for (int i = 0; i < n; ++i) {
    ids.push_back(argmax(logits));
    logits = fwd.eval(seq, {&ids.back(), 1});
  }
  return ids;
}

TEST(ProbeModel, GreedyOutputIsDeterministic) {
  KVPACK_PROBE_MODEL(path);
  const auto model = Model::load(path.string());
  const std::string prompt = "Once upon a time";
  const std::vector<int32_t> first = greedy(*model, prompt, 100, 2);
  EXPECT_EQ(greedy(*model, prompt, 100, 2), first);
  // Text, not noise: the continuation is mostly pieces longer than one character.
  const std::string text = model->tokenizer()->decode(first);
  EXPECT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
  EXPECT_GT(text.size(), 250u) << text;
  RecordProperty("greedy_text", text);
}

}  // namespace
}  // namespace kvpack::model
