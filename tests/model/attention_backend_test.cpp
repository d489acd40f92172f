// The attention backend boundary: a Forward given a backend in its options runs every attention
// call through it, one decode call per layer and pass for all decode rows and one prefill call
// for the pass's prefill pieces, and gets what the built-in CPU backend gives.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kvpack/model.h"
#include "model/synthetic_model.h"

namespace kvpack::model {
namespace {

constexpr int kPage = 16;

// The CPU backend, counting the calls and what they carry.
class Counting final : public attention::Backend {
 public:
  explicit Counting(ThreadPool& pool) : cpu_(attention::make_cpu_backend(pool)) {}
  std::string_view name() const override { return "counting"; }
  void decode(std::span<const cache::LayerView> views, const float* q, int n_q_heads, float* out,
              const attention::Params& params) override {
    ++decode_calls;
    decode_rows += static_cast<int>(views.size());
    cpu_->decode(views, q, n_q_heads, out, params);
  }
  void prefill(std::span<const attention::PrefillSeq> seqs, int n_q_heads,
               const attention::Params& params) override {
    ++prefill_calls;
    prefill_pieces += static_cast<int>(seqs.size());
    cpu_->prefill(seqs, n_q_heads, params);
  }
  size_t workspace_bytes() const override { return cpu_->workspace_bytes(); }
  attention::DecodeStats decode_stats() const override { return cpu_->decode_stats(); }

  int decode_calls = 0, decode_rows = 0, prefill_calls = 0, prefill_pieces = 0;

 private:
  std::unique_ptr<attention::Backend> cpu_;
};

std::unique_ptr<Model> load_model() {
  const std::vector<uint8_t> bytes = synthetic_model(SyntheticModel{}).bytes();
  const std::string path =
      fmt::format("{}/attention_backend_{}.gguf", ::testing::TempDir(),
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return Model::load(path);
}

std::vector<int32_t> ids(int n, int first) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back((first + 5 * i) % 64);
  return out;
}

TEST(AttentionBackend, EveryCallGoesThroughTheBackendInOptions) {
  const std::unique_ptr<Model> model = load_model();
  const int n_layers = model->spec().n_layers();
  ThreadPool pool(2);
  cache::CacheConfig cfg =
      model->cache_config(format::KVPolicy::parse("k=q8,v=q8"), 128, kPage, 64);
  cfg.n_pages *= 3;
  cache::Cache mine(cfg), builtin(cfg);
  Counting counting(pool);
  Forward with(*model, mine, pool, {.max_chunk = 64, .attention = &counting});
  Forward without(*model, builtin, pool, {.max_chunk = 64});
  EXPECT_EQ(without.attention().name(), "cpu");
  EXPECT_EQ(&with.attention(), &counting);
  std::vector<cache::SeqId> a, b;
  for (int i = 0; i < 3; ++i) {
    a.push_back(mine.create());
    b.push_back(builtin.create());
  }
  // One pass of 39 rows: three prefill pieces, one prefill call per layer.
  std::vector<std::vector<int32_t>> prompts = {ids(20, 1), ids(7, 2), ids(12, 3)};
  std::vector<BatchItem> ia, ib;
  for (int i = 0; i < 3; ++i) {
    ia.push_back({a[static_cast<size_t>(i)], prompts[static_cast<size_t>(i)]});
    ib.push_back({b[static_cast<size_t>(i)], prompts[static_cast<size_t>(i)]});
  }
  const std::span<const float> la = with.eval_batch(ia);
  const std::vector<float> got(la.begin(), la.end());
  const std::span<const float> lb = without.eval_batch(ib);
  EXPECT_EQ(got, std::vector<float>(lb.begin(), lb.end()));
  EXPECT_EQ(counting.prefill_calls, n_layers);
  EXPECT_EQ(counting.prefill_pieces, 3 * n_layers);
  EXPECT_EQ(counting.decode_calls, 0);
  // A decode step of all three: one decode call per layer with three rows.
  const int32_t next[3] = {4, 5, 6};
  for (int i = 0; i < 3; ++i) {
    ia[static_cast<size_t>(i)].tokens = {&next[i], 1};
    ib[static_cast<size_t>(i)].tokens = {&next[i], 1};
  }
  const std::span<const float> da = with.eval_batch(ia);
  const std::vector<float> got_step(da.begin(), da.end());
  const std::span<const float> db = without.eval_batch(ib);
  EXPECT_EQ(got_step, std::vector<float>(db.begin(), db.end()));
  EXPECT_EQ(counting.decode_calls, n_layers);
  EXPECT_EQ(counting.decode_rows, 3 * n_layers);
  EXPECT_EQ(counting.prefill_calls, n_layers);
  // Sequence 0's 21 tokens hold one full page, the others none: one page per layer and KV head.
  EXPECT_EQ(with.attention().decode_stats().page_blocks,
            static_cast<uint64_t>(n_layers) * model->spec().n_kv_heads());
  EXPECT_EQ(with.attention().decode_stats().page_blocks,
            without.attention().decode_stats().page_blocks);
}

// Forked sequences hold their parent's pages: a decode step of the forks reads them once.
TEST(AttentionBackend, ForksReadTheirSharedPagesOncePerStep) {
  const std::unique_ptr<Model> model = load_model();
  const int n_layers = model->spec().n_layers();
  ThreadPool pool(2);
  cache::CacheConfig cfg =
      model->cache_config(format::KVPolicy::parse("k=f16,v=f16"), 128, kPage, 32);
  cfg.n_pages *= 5;
  cache::Cache cache(cfg);
  Forward fwd(*model, cache, pool, {.max_chunk = 32});
  const cache::SeqId root = cache.create();
  fwd.eval(root, ids(48, 1));  // three full pages, no tail
  std::vector<BatchItem> items;
  const int32_t next[4] = {1, 2, 3, 4};
  for (int i = 0; i < 4; ++i) items.push_back({cache.fork(root), {&next[i], 1}});
  const uint64_t before = fwd.attention().decode_stats().page_blocks;
  const std::span<const float> logits = fwd.eval_batch(items);
  ASSERT_EQ(logits.size(), 4u * static_cast<size_t>(model->spec().n_vocab));
  // The 4 forks hold the same 3 pages (their new token goes into a private tail): 3 page reads
  // per layer and KV head, not 12.
  EXPECT_EQ(fwd.attention().decode_stats().page_blocks - before,
            3u * static_cast<uint64_t>(n_layers) * model->spec().n_kv_heads());
}

}  // namespace
}  // namespace kvpack::model
