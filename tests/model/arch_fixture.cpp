#include "arch_fixture.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "model/sampler.h"
#include "read_file.h"

namespace kvpack::model::testing {
namespace {

std::vector<ArchGold::Top> read_tops(const nlohmann::json& j) {
  std::vector<ArchGold::Top> out;
  for (const auto& row : j) {
    ArchGold::Top& top = out.emplace_back();
    for (const auto& e : row) top.emplace_back(e[0].get<int32_t>(), e[1].get<float>());
  }
  return out;
}

constexpr double kF16 = 0x1p-11 / 1.7320508075688772;       // 2^-11 / sqrt(3)
constexpr double kQ8_0 = 2.5 / (127 * 3.4641016151377544);  // 2.5 / (127 sqrt(12))
constexpr double kQ8_K = 3.0 / (127 * 3.4641016151377544);  // 3 / (127 sqrt(12))
constexpr double kBF16 = 0x1p-8 / 1.7320508075688772;       // 2^-8 / sqrt(3)
constexpr double kSpreadF16 = 0.1, kSpreadInt8 = 0.6;       // README, llama.cpp itself

// The relative RMS rounding llama.cpp applies to a matmul's activations for this weight type.
double activation_rounding(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return kF16;
    case GgmlType::BF16:
      return kBF16;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
      return kQ8_0;
    default:
      return kQ8_K;  // K-quants
  }
}

double sq(double x) {
  return x * x;
}

}  // namespace

const ArchGold::Top& ArchGold::top(size_t row) const {
  return row < prompt_top.size() ? prompt_top[row] : gen_top[row - prompt_top.size() + 1];
}

bool ArchGold::split_decode(size_t row) const {
  return row >= prompt_ids.size() && static_cast<int64_t>(row) >= kSplitDecodeFrom;
}

ArchGold read_arch_gold(const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(kvpack::testing::read_text(path));
  ArchGold g;
  g.arch = j["arch"];
  g.prompt = j["prompt"];
  g.prompt_ids = j["prompt_ids"].get<std::vector<int32_t>>();
  g.gen_ids = j["gen_ids"].get<std::vector<int32_t>>();
  const std::string hex = j["gen_text_hex"];
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    g.gen_text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  g.prompt_top = read_tops(j["prompt_top"]);
  g.gen_top = read_tops(j["gen_top"]);
  if (j.contains("moe_experts")) {
    g.moe_experts = j["moe_experts"].get<std::vector<std::vector<std::vector<int32_t>>>>();
    g.moe_margin = j["moe_router_margin"].get<std::vector<std::vector<float>>>();
  }
  return g;
}

std::vector<std::vector<float>> teacher_forced_logits(const Model& model, const ArchGold& gold,
                                                      const format::KVPolicy& policy,
                                                      ThreadPool& pool, ForwardOptions options) {
  const int64_t n_prompt = static_cast<int64_t>(gold.prompt_ids.size());
  cache::Cache cache(model.cache_config(policy, static_cast<int64_t>(gold.n_rows()) + 1, 32, 512));
  options.max_chunk = 512;  // llama.cpp's n_batch: the prompt in one pass
  Forward fwd(model, cache, pool, std::move(options));
  const cache::SeqId seq = cache.create();
  const auto n_vocab = static_cast<size_t>(model.spec().n_vocab);
  std::vector<float> all(static_cast<size_t>(n_prompt) * n_vocab);
  fwd.eval_all(seq, gold.prompt_ids, all.data());
  std::vector<std::vector<float>> rows;
  for (int64_t i = 0; i < n_prompt; ++i) {
    rows.emplace_back(all.begin() + i * n_vocab, all.begin() + (i + 1) * n_vocab);
  }
  for (size_t i = 0; i + 1 < gold.gen_ids.size(); ++i) {
    const std::span<const float> l = fwd.eval(seq, {&gold.gen_ids[i], 1});
    rows.emplace_back(l.begin(), l.end());
  }
  return rows;
}

double ErrorModel::s(int layers_done) const {
  return std::sqrt(2 * r2_after[static_cast<size_t>(layers_done)]);
}

double ErrorModel::logit_tol(double sigma, bool split_decode) const {
  return kLogitZ * logits_s() * sigma + (split_decode ? decode_spread : 0);
}

double ErrorModel::gap_tol(double sigma, bool split_decode) const {
  return kGapZ * std::sqrt(2.0) * logits_s() * sigma + (split_decode ? 2 * decode_spread : 0);
}

ErrorModel error_model(const Model& model) {
  const Weights& w = model.weights();
  const bool gelu_table = model.spec().traits->ffn == FfnKind::geglu;
  ErrorModel e;
  double r2 = 0;
  bool int8 = false;
  const auto add = [&](const WeightMatrix& m) {
    const double r = activation_rounding(m.type);
    int8 = int8 || r >= kQ8_0;
    r2 += sq(r);
  };
  for (const LayerWeights& l : w.layers) {
    e.r2_after.push_back(r2);
    add(l.wq);  // Q, K and V share their input
    add(l.wo);
    add(l.experts.empty() ? l.ffn_gate : l.experts[0].gate);
    add(l.experts.empty() ? l.ffn_down : l.experts[0].down);
    r2 += 3 * sq(kF16) + (gelu_table ? 2 * sq(kF16) : 0);
  }
  add(w.output);
  e.r2_after.push_back(r2);
  e.decode_spread = int8 ? kSpreadInt8 : kSpreadF16;
  return e;
}

void RouteFollower::attach(ForwardOptions& o) {
  if (gold_.moe_experts.empty()) return;
  o.trace = [this](const TraceTensor& t) { see(t); };
  o.route = [this](int l, int64_t p, std::span<int32_t> ids) { route(l, p, ids); };
}

void RouteFollower::see(const TraceTensor& t) {
  if (std::string_view(t.name).ends_with("ffn_gate_inp.weight")) {
    router_.assign(t.data, t.data + t.rows * t.cols);
    cols_ = t.cols;
    pos_ = t.pos;
  }
}

void RouteFollower::route(int layer, int64_t pos, std::span<int32_t> ids) {
  const float* logits = router_.data() + (pos - pos_) * cols_;
  std::vector<float> p(logits, logits + cols_);
  const float max = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (float& x : p) sum += x = std::exp(x - max);
  for (float& x : p) x = static_cast<float>(x / sum);
  std::sort(p.rbegin(), p.rend());
  const size_t k = ids.size();
  const double sigma = spread({logits, static_cast<size_t>(cols_)});
  const double tol = kGapZ * (p[k - 1] + p[k]) * e_.s(layer) * sigma + 1e-5;
  if (pos >= static_cast<int64_t>(gold_.prompt_ids.size())) {
    if (p[k - 1] - p[k] < tol) diverged_at = std::min(diverged_at, pos);
    return;
  }
  std::vector<int32_t> want = gold_.moe_experts[layer][pos], got(ids.begin(), ids.end());
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  const float margin = gold_.moe_margin[layer][pos];
  if (mode_ == Mode::observe) {
    if (got != want) diverged_at = std::min(diverged_at, pos);
  } else if (margin < tol) {
    std::copy(want.begin(), want.end(), ids.begin());
    ++followed;
  } else {
    ++checked;
    EXPECT_EQ(got, want) << "layer " << layer << " position " << pos << ": llama.cpp's margin "
                         << margin << " > " << tol;
  }
}

size_t greedy_agreement(const Model& model, const ArchGold& gold, RouteFollower::Mode mode) {
  const ErrorModel e = error_model(model);
  RouteFollower routes(gold, e, mode);
  ThreadPool pool(2);
  cache::Cache cache(model.cache_config(format::KVPolicy(), 512, 32, 512));
  ForwardOptions o{.max_chunk = 512};
  routes.attach(o);
  Forward fwd(model, cache, pool, o);
  const cache::SeqId seq = cache.create();
  std::span<const float> logits = fwd.eval(seq, gold.prompt_ids);
  size_t agreed = 0;
  for (; agreed < gold.gen_ids.size(); ++agreed) {
    const size_t row = gold.prompt_ids.size() - 1 + agreed;
    const int32_t id = argmax(logits);
    if (id != gold.gen_ids[agreed]) {
      // Either token is right at a near-tie or after kvpack routed otherwise than llama.cpp may
      // have, and the rest follows from it; anywhere else the two parting is a bug.
      const ArchGold::Top& top = gold.gen_top[agreed];
      const double gap = top[0].second - top[1].second;
      const double tol = e.gap_tol(spread(logits), gold.split_decode(row));
      if (static_cast<int64_t>(row) < routes.diverged_at) {
        EXPECT_LE(gap, tol) << "token " << agreed << ": " << id << ", llama.cpp's "
                            << gold.gen_ids[agreed];
      }
      break;
    }
    logits = fwd.eval(seq, {&id, 1});
  }
  return agreed;
}

double spread(std::span<const float> logits) {
  double mean = 0, var = 0;
  for (float x : logits) mean += x;
  mean /= static_cast<double>(logits.size());
  for (float x : logits) var += (x - mean) * (x - mean);
  return std::sqrt(var / static_cast<double>(logits.size()));
}

}  // namespace kvpack::model::testing
