// `kvpack dev synth-model` and `kvpack bench decode` through the built binary, on a small
// synthetic model without a tokenizer. Speeds are not checked (benchmarks, not timed tests);
// the report's shape and its derived fields are.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "kvpack/model.h"
#include "shared_data.h"

namespace kvpack::model {
namespace {

std::string synth(const std::string& name, const std::string& args) {
  const std::string path = kvpack::testing::temp_path("bench_cli_" + name + ".gguf");
  const auto r = testing::run_kvpack("dev synth-model --out " + path + " " + args);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
  return path;
}

TEST(DevSynthModel, WritesTheRequestedShape) {
  const std::string path = synth("shape",
                                 "--layers 3 --embd 128 --heads 8 --kv-heads 2 --head-dim 32 "
                                 "--ff 96 --vocab 100 --ctx 8k --type q8_0 --tied --rope-freqs");
  const auto m = Model::load(path);
  const ModelSpec& hp = m->spec();
  EXPECT_EQ(hp.n_layers(), 3);
  EXPECT_EQ(hp.n_embd, 128);
  EXPECT_EQ(hp.n_heads(), 8);
  EXPECT_EQ(hp.n_kv_heads(), 2);
  EXPECT_EQ(hp.head_dim_k, 32);
  EXPECT_EQ(hp.n_ff, 96);
  EXPECT_EQ(hp.n_vocab, 100);
  EXPECT_EQ(hp.n_ctx_train, 8192);
  EXPECT_EQ(m->weights().layers[0].wq.type, GgmlType::Q8_0);
  EXPECT_TRUE(m->weights().tied_output);
  EXPECT_EQ(hp.layers[0].rope.freq_factors.size(), 16u);
  EXPECT_EQ(m->tokenizer(), nullptr);

  const auto bad = testing::run_kvpack("dev synth-model --out /tmp/x.gguf --type iq2_xxs");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("unknown weight type 'iq2_xxs'"), std::string::npos) << bad.err;
}

TEST(DevSynthModel, WritesEveryWeightType) {
  // A K-quant model needs 256-value rows; Q4_K_M-style mixes come from llama.cpp's own files.
  const std::string path = synth("q4k",
                                 "--layers 1 --embd 256 --heads 4 --kv-heads 2 "
                                 "--head-dim 64 --ff 256 --vocab 64 --type q4_k --embd-type q6_k");
  const auto m = Model::load(path);
  EXPECT_EQ(m->weights().layers[0].ffn_down.type, GgmlType::Q4_K);
  EXPECT_EQ(m->weights().token_embd.type, GgmlType::Q6_K);
  const auto bad = testing::run_kvpack("dev synth-model --out /tmp/x.gguf --type q4_k --embd 128");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("not whole Q4_K blocks of 256"), std::string::npos) << bad.err;
}

TEST(BenchDecodeCli, JsonReportsEveryDepthAndPolicyAgainstF16) {
  const std::string path = synth("bench",
                                 "--layers 2 --embd 64 --heads 4 --kv-heads 2 "
                                 "--head-dim 32 --ff 64 --vocab 50 --ctx 1024");
  const auto r = testing::run_kvpack("bench decode -m " + path +
                                     " -d 0,100 -n 3 -r 2 -t 2 --kv k=q8,v=q8 -ctk q4 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["layers"], 2);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["fill"], "kv");
  const auto& res = j["results"];
  ASSERT_EQ(res.size(), 6u);  // f16/f16 first, then q8/q8 and q4/f16, at two depths each
  const char* expected[] = {"k=f16,v=f16", "k=f16,v=f16", "k=q8,v=q8",
                            "k=q8,v=q8",   "k=q4,v=f16",  "k=q4,v=f16"};
  for (size_t i = 0; i < res.size(); ++i) {
    EXPECT_EQ(res[i]["policy"], expected[i]);
    EXPECT_EQ(res[i]["depth"], i % 2 == 0 ? 0 : 100);
    EXPECT_EQ(res[i]["samples"].size(), 2u);
    EXPECT_GT(res[i]["tokens_per_s"].get<double>(), 0);
    EXPECT_GT(res[i]["bandwidth_gb_per_s"].get<double>(), 0);
    EXPECT_EQ(res[i]["bytes_per_step"].get<uint64_t>(),
              res[i]["weight_bytes"].get<uint64_t>() + res[i]["kv_bytes"].get<uint64_t>());
  }
  EXPECT_DOUBLE_EQ(res[0]["speed_vs_f16"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(res[0]["cpu_speed_vs_f16"].get<double>(), 1.0);
  EXPECT_GT(res[2]["cpu_tokens_per_s"].get<double>(), 0);
  // The SIMD target and which kernels read the layers; head dim 32 has SIMD kernels throughout.
  EXPECT_FALSE(j["simd_target"].get<std::string>().empty());
  ASSERT_EQ(res[2]["kernels"].size(), 1u);
  EXPECT_EQ(res[2]["kernels"][0].get<std::string>().rfind("layers 0-1: K q8 int8-dot (", 0), 0u)
      << res[2]["kernels"];
  EXPECT_TRUE(res[2]["kernel_fallbacks"].empty());
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  // At depth 100 + 1 warm-up + 3/2 steps = 102 tokens: 3 pages, where a q8 head's page is
  // 32 x 34 bytes against f16's 32 x 64, and 6 tail tokens in f32 (2 layers x 2 heads x 64 x 4 B).
  const double tail = 6 * 2 * 2 * 64 * 4, page = 2 * 2 * 2 * 32;  // page: x bytes per token
  EXPECT_DOUBLE_EQ(res[3]["kv_bytes_vs_f16"].get<double>(),
                   (3 * page * 34 + tail) / (3 * page * 64 + tail));
}

TEST(BenchDecodeCli, TableAndPrefillFill) {
  const std::string path = synth("table",
                                 "--layers 1 --embd 64 --heads 2 --kv-heads 1 "
                                 "--head-dim 32 --ff 64 --vocab 50 --ctx 512");
  const auto r = testing::run_kvpack("bench decode -m " + path +
                                     " -d 40 -n 2 -r 1 --fill prefill --kv k=q4,v=q8");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s :
       {"K/V", "tok/s", "speed/f16", "prefill tok/s", "f16/f16", "q4/q8", "the model's prefill"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("SIMD target"), std::string::npos) << r.out;
  const auto deep = testing::run_kvpack("bench decode -m " + path + " -d 600 -n 2");
  EXPECT_EQ(deep.status, 1);
  EXPECT_NE(deep.err.find("exceeds the model's context of 512"), std::string::npos) << deep.err;
}

TEST(BenchDecodeCli, WarnsWhenALayerFallsBackToTheCodecOperations) {
  // Head dim 40 is not a multiple of 16: no SIMD kernel tiles it.
  const std::string path = synth("dim40",
                                 "--layers 1 --embd 80 --heads 2 --kv-heads 1 "
                                 "--head-dim 40 --ff 64 --vocab 50 --ctx 256");
  const auto r = testing::run_kvpack("bench decode -m " + path + " -d 40 -n 2 -r 1 --kv k=q8,v=q8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("kvpack: warning: k=q8,v=q8: layer 0: q8 keys at head dim 40"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("K q8 codec ops, V q8 codec ops"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kvpack::model
