// The optimized forward pass (chunked prefill, then decode steps, K/V through the paged cache and
// attention) against the plain scalar forward of reference_forward.h, on synthetic Llama GGUFs
// with F16, Q8_0 and Q4_0 weights:
//  - step by step: every intermediate tensor the forward traces is recomputed by the reference
//    from the forward's own inputs to that step and must lie within the bound derived from the
//    weight types (docs/weights.md, "Tolerances");
//  - end to end: the free-running reference's logits, within an empirical share of their scale
//    (worst-case bounds do not compose usefully through attention; the step check is the tight
//    one).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/rng.h"
#include "cli_run.h"
#include "kvpack/model.h"
#include "model/synthetic_model.h"
#include "reference_forward.h"

namespace kvpack::model {
namespace {

using testing::Bounded;
using testing::ReferenceLlama;

struct Case {
  const char* name;
  GgmlType type;
  GgmlType embd_type;
  bool tied;
  bool rope_freqs;
  const char* kv;
  double kv_rounding;
  QuantDot dot;
  // End to end, |logit - free-running scalar logit| / max |logit| stays below this (empirical:
  // q8_0 activations move each int8-path matvec by ~0.3%, which compounds over the layers).
  double end_to_end;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

// Receives the forward's traced tensors and checks each against the reference step that makes
// it, fed the forward's own inputs to that step.
class StepChecker {
 public:
  StepChecker(const ReferenceLlama& ref, const std::vector<int32_t>& ids) : ref_(ref), ids_(ids) {
    keys_.resize(static_cast<size_t>(ref.n_layers()));
    values_.resize(static_cast<size_t>(ref.n_layers()));
  }

  void operator()(const TraceTensor& t) {
    auto& rows = seen_[std::string(t.name)];
    rows.assign(static_cast<size_t>(t.rows), {});
    for (int r = 0; r < t.rows; ++r) rows[r].assign(t.data + r * t.cols, t.data + (r + 1) * t.cols);
    const std::string name(t.name);
    for (int r = 0; r < t.rows; ++r) check(t, name, r, rows[r]);
  }

  double worst() const { return worst_; }
  const std::map<std::string, double>& worst_by_step() const { return worst_by_step_; }
  const std::map<std::string, int>& counts() const { return counts_; }

 private:
  // Row r of the tensor `name` made in the same chunk (rows of the chunk's first position).
  const std::vector<double>& in(const std::string& name, int64_t pos) const {
    const auto it = seen_.find(name);
    EXPECT_NE(it, seen_.end()) << name;
    const int64_t first = chunk_pos_;
    return it->second.at(static_cast<size_t>(pos - first));
  }

  std::string blk(int l, const char* what) const { return fmt::format("blk.{}.{}", l, what); }

  Bounded expect(const TraceTensor& t, const std::string& name, int64_t pos) {
    const int l = t.layer;
    const auto weight = [&](const char* w) { return blk(l, w) + ".weight"; };
    const std::string layer_in = l == 0 ? "token_embd" : blk(l - 1, "l_out");
    const std::string kind = l >= 0 ? name.substr(blk(l, "").size()) : name;
    if (kind == "token_embd") return ref_.embed(ids_.at(static_cast<size_t>(pos)));
    if (kind == "attn_norm.weight") return ref_.rms_norm(name, in(layer_in, pos));
    if (kind == "attn_q.weight" || kind == "attn_k.weight" || kind == "attn_v.weight") {
      return ref_.project(name, in(weight("attn_norm"), pos));
    }
    if (kind == "q_rope") return ref_.rope(in(weight("attn_q"), pos), pos);
    if (kind == "k_rope") return ref_.rope(in(weight("attn_k"), pos), pos);
    if (kind == "kqv_out") {
      auto& keys = keys_[static_cast<size_t>(l)];
      auto& vals = values_[static_cast<size_t>(l)];
      while (static_cast<int64_t>(keys.size()) <= pos) {  // this chunk's K/V joined the cache
        keys.push_back(in(blk(l, "k_rope"), static_cast<int64_t>(keys.size())));
        vals.push_back(in(weight("attn_v"), static_cast<int64_t>(vals.size())));
      }
      return ref_.attention(in(blk(l, "q_rope"), pos), std::span(keys).first(pos + 1),
                            std::span(vals).first(pos + 1));
    }
    if (kind == "attn_output.weight") return ref_.project(name, in(blk(l, "kqv_out"), pos));
    if (kind == "ffn_inp") return ref_.add(in(layer_in, pos), in(weight("attn_output"), pos));
    if (kind == "ffn_norm.weight") return ref_.rms_norm(name, in(blk(l, "ffn_inp"), pos));
    if (kind == "ffn_gate.weight" || kind == "ffn_up.weight") {
      return ref_.project(name, in(weight("ffn_norm"), pos));
    }
    if (kind == "ffn_act") {
      return ref_.swiglu(in(weight("ffn_gate"), pos), in(weight("ffn_up"), pos));
    }
    if (kind == "ffn_down.weight") return ref_.project(name, in(blk(l, "ffn_act"), pos));
    if (kind == "l_out") return ref_.add(in(blk(l, "ffn_inp"), pos), in(weight("ffn_down"), pos));
    const std::string last = blk(ref_.n_layers() - 1, "l_out");
    if (kind == "output_norm.weight") return ref_.rms_norm(name, in(last, pos));
    if (kind == "output.weight") {
      // Its rows start where output_norm's did, which may be past the chunk's first position.
      const auto& norm = seen_.at("output_norm.weight");
      return ref_.project(name, norm.at(static_cast<size_t>(pos - output_pos_)));
    }
    ADD_FAILURE() << "untraced step " << name;
    return {};
  }

  void check(const TraceTensor& t, const std::string& name, int r, const std::vector<double>& got) {
    if (name == "token_embd") chunk_pos_ = t.pos;
    if (name == "output_norm.weight") output_pos_ = t.pos;
    const int64_t pos = t.pos + r;
    const Bounded want = expect(t, name, pos);
    ASSERT_EQ(want.v.size(), got.size()) << name;
    for (size_t j = 0; j < got.size(); ++j) {
      const double err = std::fabs(got[j] - want.v[j]);
      ASSERT_LE(err, want.e[j]) << name << " position " << pos << " element " << j << ": got "
                                << got[j] << ", want " << want.v[j] << " +- " << want.e[j];
      worst_ = std::max(worst_, err / want.e[j]);
      double& w = worst_by_step_[step_kind(t, name)];
      w = std::max(w, err / want.e[j]);
    }
    ++counts_[step_kind(t, name)];
  }

  static std::string step_kind(const TraceTensor& t, const std::string& name) {
    return t.layer >= 0 ? name.substr(name.find('.', 4) + 1) : name;
  }

  const ReferenceLlama& ref_;
  const std::vector<int32_t>& ids_;
  std::map<std::string, std::vector<std::vector<double>>> seen_;  // name -> rows of this chunk
  std::vector<std::vector<std::vector<double>>> keys_, values_;   // (layer)(position) as traced
  int64_t chunk_pos_ = 0, output_pos_ = 0;
  double worst_ = 0;
  std::map<std::string, int> counts_;
  std::map<std::string, double> worst_by_step_;
};

class SyntheticForward : public ::testing::TestWithParam<Case> {};

TEST_P(SyntheticForward, EveryStepWithinDerivedBoundAndLogitsMatchScalarForward) {
  const Case& c = GetParam();
  SyntheticModel sm;
  sm.n_layers = 2;
  sm.n_embd = 64;
  sm.n_heads = 4;
  sm.n_kv_heads = 2;
  sm.head_dim = 32;
  sm.n_ff = 96;
  sm.n_vocab = 80;
  sm.type = c.type;
  sm.embd_type = c.embd_type;
  sm.tied_output = c.tied;
  sm.rope_freqs = c.rope_freqs;
  const std::string path = kvpack::testing::temp_path(std::string("synthetic_") + c.name + ".gguf");
  synthetic_model(sm).write(path);
  const auto model = Model::load(path);
  EXPECT_EQ(model->weights().tied_output, c.tied);
  EXPECT_EQ(model->spec().layers[0].rope.freq_factors.empty(), !c.rope_freqs);

  // 45 prompt tokens in chunks of 16 (two full, one partial), then 8 decode steps.
  Rng rng(7);
  std::vector<int32_t> ids(53);
  for (auto& id : ids) id = static_cast<int32_t>(rng.below(sm.n_vocab));
  const size_t n_prompt = 45;

  const ReferenceLlama stepwise(model->file(), {c.dot, c.kv_rounding});
  StepChecker checker(stepwise, ids);
  ThreadPool pool(2);
  cache::Cache cache(model->cache_config(format::KVPolicy::parse(c.kv), 64, /*page_tokens=*/16));
  Forward fwd(*model, cache, pool,
              {.max_chunk = 16, .dot = c.dot, .trace = [&](const TraceTensor& t) { checker(t); }});
  const cache::SeqId seq = cache.create();
  std::vector<float> logits(ids.size() * sm.n_vocab);
  fwd.eval_all(seq, std::span(ids).first(n_prompt), logits.data());
  for (size_t t = n_prompt; t < ids.size(); ++t) {
    const auto last = fwd.eval(seq, std::span(ids).subspan(t, 1));
    std::copy(last.begin(), last.end(), logits.begin() + t * sm.n_vocab);
  }
  ASSERT_FALSE(HasFailure());
  // Every step of every layer was checked at every position.
  for (const auto& [step, count] : checker.counts()) {
    EXPECT_EQ(count, step == "token_embd" || step == "output_norm.weight" || step == "output.weight"
                         ? 53
                         : 53 * sm.n_layers)
        << step;
  }
  EXPECT_EQ(checker.counts().size(), 18u);

  // End to end against the free-running scalar forward.
  ReferenceLlama free_running(model->file(), {c.dot, c.kv_rounding});
  double worst_rel = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::vector<double> want = free_running.step(ids[t]);
    double scale = 0, err = 0;
    for (int i = 0; i < sm.n_vocab; ++i) {
      scale = std::max(scale, std::fabs(want[i]));
      err = std::max(err, std::fabs(logits[t * sm.n_vocab + i] - want[i]));
    }
    worst_rel = std::max(worst_rel, err / scale);
  }
  EXPECT_LT(worst_rel, c.end_to_end) << c.name;
  for (const auto& [step, w] : checker.worst_by_step()) RecordProperty(step, std::to_string(w));
  RecordProperty("end_to_end_error_over_max_logit", std::to_string(worst_rel));
}

INSTANTIATE_TEST_SUITE_P(
    WeightTypes, SyntheticForward,
    ::testing::Values(Case{"f16", GgmlType::F16, GgmlType::F32, false, false, "k=f32,v=f32", 0.0,
                           QuantDot::kInt8, 1e-4},
                      Case{"q8_0_tied_freqs_f16cache", GgmlType::Q8_0, GgmlType::Q8_0, true, true,
                           "k=f16,v=f16", 0x1p-11, QuantDot::kInt8, 0.05},
                      Case{"q4_0", GgmlType::Q4_0, GgmlType::F16, false, false, "k=f32,v=f32", 0.0,
                           QuantDot::kInt8, 0.05},
                      Case{"q4_0_f32dots", GgmlType::Q4_0, GgmlType::F32, false, true,
                           "k=f32,v=f32", 0.0, QuantDot::kF32, 1e-4}),
    [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvpack::model
