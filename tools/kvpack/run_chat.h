// `kvpack run --chat`: the conversation loop over a prepared model, cache and sampler (run.cpp
// sets those up as for plain generation and hands over here).
#pragma once

#include <cstdint>
#include <string>

#include "kvpack/cache.h"
#include "kvpack/model.h"
#include "model/sampler.h"

namespace kvpack::cli {

struct ChatRunOptions {
  std::string system_prompt;
  std::string template_file;  // empty: the GGUF's template or the built-in format
  bool one_shot = false;      // the single user turn is `prompt`; otherwise turns come from stdin
  std::string prompt;
  int n_predict = 128;  // tokens per reply
  int64_t context = 4096;
};

// Totals over every turn, for the statistics run.cpp prints.
struct ChatRunTotals {
  int64_t prompt_tokens = 0;
  double prompt_s = 0;
  int64_t decode_evals = 0;
  double decode_s = 0;
};

ChatRunTotals run_chat(const model::Model& model, model::Forward& forward, cache::Cache& cache,
                       cache::SeqId seq, model::Sampler& sampler, const ChatRunOptions& options);

}  // namespace kvpack::cli
