// The mixture-of-experts FFN on synthetic Qwen3-MoE files: a token reads only the experts it is
// routed to (experts nobody chose can hold anything, even NaN, without changing a bit), and
// routers kvpack does not run are refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "cli_run.h"
#include "error_of.h"
#include "kvpack/model.h"
#include "model/synthetic_model.h"

namespace kvpack::model {
namespace {

using kvpack::testing::error_of;

SyntheticModel moe() {
  SyntheticModel m;
  m.arch = "qwen3moe";
  m.n_layers = 2;
  m.n_embd = 64;
  m.n_expert = 8;
  m.n_expert_used = 2;
  m.n_ff_exp = 32;
  return m;
}

std::string write(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path = kvpack::testing::temp_path("moe_" + name + ".gguf");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Logits of a 2-token prefill and 2 decode steps; `used` collects the experts chosen per layer.
std::vector<std::vector<float>> run(const std::string& path, std::vector<std::set<int>>* used) {
  const auto model = Model::load(path);
  ThreadPool pool(2);
  cache::Cache cache(model->cache_config(format::KVPolicy(), 16));
  ForwardOptions o;
  o.trace = [&](const TraceTensor& t) {
    if (used == nullptr || !std::string_view(t.name).ends_with("ffn_moe_topk")) return;
    used->resize(2);
    for (int64_t i = 0; i < t.rows * t.cols; ++i) {
      (*used)[static_cast<size_t>(t.layer)].insert(static_cast<int>(t.data[i]));
    }
  };
  Forward fwd(*model, cache, pool, o);
  const cache::SeqId seq = cache.create();
  std::vector<std::vector<float>> out;
  const std::vector<int32_t> prompt = {5, 9};
  auto l = fwd.eval(seq, prompt);
  for (int32_t id : {17, 3}) {
    out.emplace_back(l.begin(), l.end());
    l = fwd.eval(seq, {&id, 1});
  }
  out.emplace_back(l.begin(), l.end());
  return out;
}

// Every F16 value of the chosen experts' slices of blk.L.ffn_{gate,up,down}_exps set to NaN.
std::vector<uint8_t> poison(std::vector<uint8_t> bytes, int layer, const std::set<int>& experts) {
  const GgufFile f = GgufFile::parse(bytes, "moe.gguf");
  for (const char* what : {"gate", "up", "down"}) {
    const GgufTensor* t = f.find_tensor(fmt::format("blk.{}.ffn_{}_exps.weight", layer, what));
    const size_t slice = t->bytes / static_cast<size_t>(t->shape[2]);
    uint8_t* data = bytes.data() + (t->data - bytes.data());
    for (int e : experts) {
      for (size_t i = 0; i < slice; i += 2) {
        const uint16_t nan = 0x7e00;
        std::memcpy(data + e * slice + i, &nan, 2);
      }
    }
  }
  return bytes;
}

TEST(MoeForward, OnlyTheChosenExpertsAreRead) {
  const std::vector<uint8_t> clean = synthetic_model(moe()).bytes();
  std::vector<std::set<int>> used;
  const auto want = run(write(clean, "clean"), &used);
  ASSERT_EQ(used.size(), 2u);
  std::vector<uint8_t> poisoned = clean;
  for (int l = 0; l < 2; ++l) {
    std::set<int> unused;
    for (int e = 0; e < 8; ++e) {
      if (used[static_cast<size_t>(l)].count(e) == 0) unused.insert(e);
    }
    ASSERT_FALSE(unused.empty()) << "layer " << l << ": 4 tokens chose every expert";
    poisoned = poison(poisoned, l, unused);
  }
  const auto got = run(write(poisoned, "unused_nan"), nullptr);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)), 0)
        << "step " << i;
  }
  // The poison bites where it is read: a chosen expert's NaN reaches the logits.
  const auto broken = run(write(poison(clean, 1, used[1]), "used_nan"), nullptr);
  EXPECT_TRUE(std::isnan(broken.back()[0]));
}

TEST(MoeForward, RoutersKvpackDoesNotRunAreRefused) {
  GgufWriter shared = synthetic_model(moe());
  shared.set("qwen3moe.expert_shared_count", gguf_uint(GgufType::u32, 1));
  const std::vector<uint8_t> a = shared.bytes();
  EXPECT_NE(error_of([&] {
              Model::load(write(a, "shared"));
            }).find("shared experts (qwen3moe.expert_shared_count) are not supported yet"),
            std::string::npos);
  GgufWriter sigmoid = synthetic_model(moe());
  sigmoid.set("qwen3moe.expert_gating_func", gguf_uint(GgufType::u32, 2));
  const std::vector<uint8_t> b = sigmoid.bytes();
  EXPECT_NE(error_of([&] {
              Model::load(write(b, "sigmoid"));
            }).find("'qwen3moe.expert_gating_func' is 2: only softmax gating (1)"),
            std::string::npos);
}

}  // namespace
}  // namespace kvpack::model
