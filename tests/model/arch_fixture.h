// llama.cpp's outputs on the tiny random-weight models of every architecture
// (../shared/models/arch, README there): the golden files, kvpack's logits for the same ids
// (teacher-forced as llama.cpp computed them), and the tolerance model the comparisons use.
//
// Tolerances. kvpack and llama.cpp compute the same functions with different roundings, so their
// logits differ by the roundings one makes and the other does not. llama.cpp rounds every
// matmul's activations to the weight type's partner (ggml's vec_dot_type): f16 for F16 weights
// (at most 2^-11 relative, RMS 2^-11/sqrt(3)), q8_0 for Q8_0/Q5_0/Q4_0 (32-value blocks, step
// amax/127; amax is about 2.5 sigma for 32 near-Gaussian values, so RMS 2.5/(127 sqrt(12))
// sigma), q8_K for K-quants (256-value blocks, amax about 3 sigma: 3/(127 sqrt(12))), nothing for
// F32. Its flash attention converts Q, K and V to f16 (3 f16 roundings per layer), and Gemma's
// GELU reads an f16 table (input and output rounded: 2 more). kvpack rounds the same Q8_0/K-quant
// activations, but any upstream difference flips some of those roundings, so the two are treated
// as independent: with R2 = the sum of the squared relative RMS roundings along the path, the
// logits differ by about s = sqrt(2 R2) of their spread sigma (their standard deviation over the
// vocabulary at that position), a deliberately high estimate (measured: 0.4-1 of it).
//  - a top-16 logit may differ by kLogitZ s sigma (the largest of ~10^4 near-Gaussian values
//    sits within 4-5 of their RMS; 6 leaves room for heavier tails);
//  - top-1 must agree where llama.cpp's top-1/top-2 gap exceeds kGapZ sqrt(2) s sigma;
//  - decode steps once the cache holds 256 positions add llama.cpp's own thread-count spread
//    (README: F16 up to 0.1, int8-activation models about 0.6), since its decode attention then
//    splits across threads and accumulates V in f16.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kvpack/model.h"

namespace kvpack::model::testing {

inline constexpr double kLogitZ = 6;
inline constexpr double kGapZ = 4;
// llama.cpp's decode splits attention across threads from this many cached positions on.
inline constexpr int64_t kSplitDecodeFrom = 256;

// One gold/ARCH-TYPE.PROMPT.json.
struct ArchGold {
  std::string arch;
  std::string prompt;  // the prompt's text
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> gen_ids;  // 32 greedy tokens
  std::string gen_text;          // their bytes
  // Top-16 (id, logit), best first: at each prompt position (one batch), and the logits that
  // chose each generated token (gen_top[0] is the last prompt position's).
  using Top = std::vector<std::pair<int32_t, float>>;
  std::vector<Top> prompt_top;
  std::vector<Top> gen_top;
  // qwen3moe: [layer][prompt position] the experts chosen and the router's margin (the gap in
  // probability between the last expert chosen and the first left out).
  std::vector<std::vector<std::vector<int32_t>>> moe_experts;
  std::vector<std::vector<float>> moe_margin;

  // llama.cpp's top-16 for teacher-forced row i: prompt_top, then gen_top[1..].
  const Top& top(size_t row) const;
  size_t n_rows() const { return prompt_ids.size() + gen_ids.size() - 1; }
  // Whether row i was a single-token decode with the cache past kSplitDecodeFrom positions.
  bool split_decode(size_t row) const;
};

// "models/arch/gold/ARCH-TYPE.PROMPT.json" and "models/arch/models/ARCH-TYPE.gguf".
ArchGold read_arch_gold(const std::string& path);

// kvpack's logits for what llama.cpp computed, teacher-forced: the prompt as one prefill, then
// each generated token but the last as a single-token decode step: [n_rows][n_vocab].
std::vector<std::vector<float>> teacher_forced_logits(const Model& model, const ArchGold& gold,
                                                      const format::KVPolicy& policy,
                                                      ThreadPool& pool, ForwardOptions options);

// The tolerance model above for one model: s after `layers` blocks (the router's input) and at
// the logits, and llama.cpp's decode spread.
struct ErrorModel {
  std::vector<double> r2_after;  // [n_layers + 1]: R2 of the blocks before layer l; last: logits
  double decode_spread = 0;

  double s(int layers_done) const;
  double logits_s() const { return s(static_cast<int>(r2_after.size()) - 1); }
  double logit_tol(double sigma, bool split_decode) const;
  double gap_tol(double sigma, bool split_decode) const;
};

ErrorModel error_model(const Model& model);

// Standard deviation of a row of logits.
double spread(std::span<const float> logits);

// Mixture of experts against llama.cpp's recorded routes (prompt positions). A router near-tie is
// a margin within what the roundings before that layer can move (ErrorModel::s): the margin
// p_a - p_b between the last expert chosen and the first left out moves, through softmax's
// derivative dp_i = p_i (dl_i - sum_j p_j dl_j), by at most about (p_a + p_b) delta when each
// router logit moves by delta = s sigma (sigma: the spread of that row's router logits); a
// near-tie is kGapZ of that (plus 1e-5 for the f32 sums of layer 0, whose input is exact).
//  - follow: at prompt positions where llama.cpp's margin is a near-tie, take its experts;
//    elsewhere kvpack's own choice must equal llama.cpp's (checked).
//  - observe: change nothing; `diverged_at` is the first position where kvpack routed otherwise
//    than llama.cpp (prompt) or met a near-tie of its own (decode, where nothing is recorded).
// Either way, logits from `diverged_at` on may legitimately differ.
class RouteFollower {
 public:
  enum class Mode { follow, observe };
  RouteFollower(const ArchGold& gold, const ErrorModel& e, Mode mode)
      : gold_(gold), e_(e), mode_(mode) {}

  // Installs the trace (router logits) and route hooks on `o` when the model has experts.
  void attach(ForwardOptions& o);

  int checked = 0, followed = 0;
  int64_t diverged_at = INT64_MAX;

 private:
  void see(const TraceTensor& t);
  void route(int layer, int64_t pos, std::span<int32_t> ids);

  const ArchGold& gold_;
  const ErrorModel& e_;
  Mode mode_;
  std::vector<float> router_;  // the current chunk's router logits (rows, cols_)
  int64_t cols_ = 0, pos_ = 0;
};

// Greedy decoding from llama.cpp's prompt ids: how many of its generated tokens kvpack reproduces
// before the two part, which fails the calling test unless it happens at a near-tie (llama.cpp's
// top-1/top-2 gap within ErrorModel::gap_tol) or after a routing divergence (diverged_at).
size_t greedy_agreement(const Model& model, const ArchGold& gold, RouteFollower::Mode mode);

}  // namespace kvpack::model::testing
