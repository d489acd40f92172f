// Perplexity and next-token KL divergence of K/V policies against a baseline policy, over
// consecutive chunks of a text, as llama.cpp's perplexity tool computes them (so the figures
// compare): the whole text is tokenized once; chunk i is tokens [i c, (i + 1) c) with its first
// token replaced by BOS when the vocabulary adds BOS; each chunk starts from an empty cache and
// only its second half is scored: the logits at positions c/2 .. c-2 predict tokens c/2+1 .. c-1.
//
//   chunk:  [BOS t1 t2 ... t(c/2-1) | t(c/2) ... t(c-2) t(c-1)]
//            context only            scored: logits here predict the next token
//
// Every policy runs on the same chunks in the same run; per scored token it is compared with
// the baseline: KL(P_base || P_policy), whether both argmaxes agree, and the NLL difference.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "eval/progress.h"
#include "eval/report.h"
#include "kvpack/format.h"
#include "kvpack/model.h"

namespace kvpack::eval {

struct PerplexityOptions {
  int64_t context = 512;  // tokens per chunk (-c)
  int max_chunks = 0;     // 0: every whole chunk of the text
  int batch = 512;        // prefill tokens per forward pass (does not change the result)
  int page_tokens = 32;
  // Replace each chunk's first token by this id (the vocabulary's BOS when it adds BOS); -1: no.
  int32_t bos = -1;
};

// The tokens of chunk `index` as evaluated: a copy of the slice, BOS first when options.bos >= 0.
std::vector<int32_t> perplexity_chunk(std::span<const int32_t> tokens, int64_t index,
                                      const PerplexityOptions& options);

// Whole chunks the text holds, limited by max_chunks. Throws Error when not even one fits.
int64_t perplexity_chunk_count(int64_t n_tokens, const PerplexityOptions& options);

// One policy's figures over every scored token. KL and top-1 figures compare with the baseline
// of the same run; for the baseline itself they are 0 and 1 by definition (has_kld false).
struct PolicyPerplexity {
  format::KVPolicy policy;
  bool is_baseline = false;
  double bytes_per_token = 0;  // cache bytes per token, page padding included
  double bits_per_value = 0;   // 8 x bytes_per_token / K and V values per token
  int64_t tokens = 0;          // scored tokens
  double ppl = 0;              // exp(mean NLL)
  double ppl_stderr = 0;       // ppl x standard error of the mean NLL (llama.cpp's +/-)
  std::vector<double> chunk_ppl;
  bool has_kld = false;
  double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double top1 = 1, top1_stderr = 0;  // fraction of tokens whose argmax agrees with the baseline
  double dppl = 0;                   // ppl - baseline ppl
  double dnll = 0, dnll_stderr = 0;  // mean(NLL - baseline NLL) = ln(ppl / baseline ppl)
  double seconds = 0;                // forward time of this policy
  std::vector<double> kld_values;    // per scored token (for paired comparisons; not in JSON)
};

struct PerplexityReport {
  std::string model_path;
  std::string model_name;
  int64_t text_tokens = 0;  // tokens of the whole text
  int64_t chunks = 0;
  PerplexityOptions options;
  int threads = 0;
  std::vector<PolicyPerplexity> rows;  // the baseline first, then the policies in order
  double seconds = 0;
};

// Runs the baseline and every policy over the chunks (per chunk: baseline, then each policy, so
// only one chunk's baseline logits are kept) and summarises. Throws Error for a policy the model's
// geometry cannot hold (naming it) or a text shorter than one chunk.
PerplexityReport evaluate_perplexity(const model::Model& model, std::span<const int32_t> tokens,
                                     const format::KVPolicy& baseline,
                                     const std::vector<format::KVPolicy>& policies,
                                     const PerplexityOptions& options, ThreadPool& pool,
                                     const Progress& progress = {});

// The report: a table with one row per policy (bytes per token, PPL, KLD mean/median/p99/max,
// top-1 agreement, PPL delta) in text and Markdown, JSON with every figure, and KLD against bytes
// per token as the chart. `command` is the command line that made it (shown in Markdown).
Report render_perplexity(const PerplexityReport& report, const std::string& command);
nlohmann::ordered_json to_json(const PolicyPerplexity& row);

}  // namespace kvpack::eval
