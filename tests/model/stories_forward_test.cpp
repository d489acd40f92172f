// stories260K end to end through the cache and attention: the logits after BOS match the fp64
// reference, and greedy decoding reproduces llama2.c's golden 200 positions with f32 and f16
// caches (head dim 8: the formats and kernels must handle small heads).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "kvpack/model.h"
#include "model/sampler.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

using kvpack::testing::read_text;

TEST(StoriesForward, BosLogitsMatchReference) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(ref_path, "models/stories260K.bos_logits.txt");
  const auto model = Model::load(path.string());
  std::vector<double> ref(512);
  std::istringstream in(read_text(ref_path));
  for (int id; in >> id;) ASSERT_TRUE(in >> ref.at(static_cast<size_t>(id)));

  for (const char* kv : {"k=f32,v=f32", "k=f16,v=f16"}) {
    ThreadPool pool(2);
    cache::Cache cache(model->cache_config(format::KVPolicy::parse(kv), 512));
    Forward fwd(*model, cache, pool);
    const cache::SeqId seq = cache.create();
    const int32_t bos = 1;
    const std::span<const float> logits = fwd.eval(seq, {&bos, 1});
    ASSERT_EQ(logits.size(), 512u);
    double worst = 0;
    for (size_t i = 0; i < 512; ++i) worst = std::max(worst, std::fabs(logits[i] - ref[i]));
    EXPECT_LT(worst, 1e-4) << kv;
    EXPECT_EQ(argmax(logits), 403);
    RecordProperty(std::string("max_abs_error_") + kv, std::to_string(worst));
  }
}

// llama2.c's `run stories260K.bin -t 0 -n 200`: BOS, then one argmax per position.
TEST(StoriesForward, Greedy200MatchesLlama2c) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(ids_path, "models/stories260K.greedy200.ids.txt");
  KVPACK_SHARED_FILE(text_path, "models/stories260K.greedy200.expected.txt");
  const auto model = Model::load(path.string());
  std::vector<int32_t> expected;
  std::istringstream in(read_text(ids_path));
  for (int32_t id; in >> id;) expected.push_back(id);
  ASSERT_EQ(expected.size(), 201u);

  for (const char* kv : {"k=f32,v=f32", "k=f16,v=f16"}) {
    ThreadPool pool(2);
    cache::Cache cache(model->cache_config(format::KVPolicy::parse(kv), 512));
    Forward fwd(*model, cache, pool);
    const cache::SeqId seq = cache.create();
    std::vector<int32_t> ids = {1};
    while (ids.size() < expected.size()) {
      ids.push_back(argmax(fwd.eval(seq, {&ids.back(), 1})));
    }
    EXPECT_EQ(ids, expected) << kv;
    EXPECT_EQ(model->tokenizer()->decode(ids), read_text(text_path)) << kv;
  }
}

// A chunked prefill of the golden ids gives, at every position, the token greedy decoding chose
// there: prefill (matmul across the chunk, causal attention) agrees with decode.
TEST(StoriesForward, ChunkedPrefillAgreesWithDecode) {
  KVPACK_SHARED_FILE(path, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(ids_path, "models/stories260K.greedy200.ids.txt");
  const auto model = Model::load(path.string());
  std::vector<int32_t> ids;
  std::istringstream in(read_text(ids_path));
  for (int32_t id; in >> id;) ids.push_back(id);
  ThreadPool pool(2);
  cache::Cache cache(model->cache_config(format::KVPolicy::parse("k=f32,v=f32"), 512));
  Forward fwd(*model, cache, pool, {.max_chunk = 48});
  const cache::SeqId seq = cache.create();
  const size_t n = ids.size() - 1;
  std::vector<float> logits(n * 512);
  fwd.eval_all(seq, std::span(ids).first(n), logits.data());
  for (size_t t = 0; t < n; ++t) {
    EXPECT_EQ(argmax(std::span<const float>(logits).subspan(t * 512, 512)), ids[t + 1]) << t;
  }
}

}  // namespace
}  // namespace kvpack::model
