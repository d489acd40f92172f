// Passkey retrieval (docs/passkey.md, the format the probe model is trained on): a random 5-digit
// key hidden at a chosen depth inside repetitive filler, then the question; the model's greedy
// answer is right when its first run of digits is the key. The prompt is built from separately
// tokenized segments so its length in tokens is exact:
//
//   [BOS][intro][filler x a][key line][filler x b][first r tokens of one filler][question]
//    a = round(depth / 100 x n), b = n - a, n the most whole fillers that fit the length
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/thread_pool.h"
#include "eval/progress.h"
#include "eval/report.h"
#include "kvpack/format.h"
#include "kvpack/model.h"

namespace kvpack::eval {

// The segments' text, verbatim from docs/passkey.md.
inline constexpr std::string_view kPasskeyIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there.";
inline constexpr std::string_view kPasskeyFiller =
    " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
inline constexpr std::string_view kPasskeyQuestion = "\nWhat is the pass key? The pass key is";
// "\nThe pass key is {KEY}. Remember it. {KEY} is the pass key."
std::string passkey_key_line(int key);

struct PasskeyPrompt {
  std::vector<int32_t> tokens;  // exactly the requested length
  int64_t key_pos = 0;          // index of the key line's first token
  int64_t key_line_tokens = 0;
  int fillers = 0;         // n: whole filler groups
  int fillers_before = 0;  // a: groups before the key line
  int partial_tokens = 0;  // r: tokens of the extra, cut filler group
};

// Builds prompts for one tokenizer. Each segment is tokenized on its own without BOS (with the
// vocabulary's dummy-prefix rule, as llama.cpp tokenizes each call).
class PasskeyPromptBuilder {
 public:
  explicit PasskeyPromptBuilder(const model::Tokenizer& tokenizer);

  // Throws Error when `length` is below min_length(key) or depth is outside [0, 100].
  PasskeyPrompt build(int64_t length, double depth_percent, int key) const;
  // BOS + intro + key line + question: the shortest prompt for this key.
  int64_t min_length(int key) const;
  // Tokens of one filler group.
  int64_t filler_tokens() const { return static_cast<int64_t>(filler_.size()); }

 private:
  const model::Tokenizer& tok_;
  std::vector<int32_t> intro_, filler_, question_;
};

// The first run of ASCII digits in `text` ("" when there is none).
std::string first_digit_run(std::string_view text);
// True when the first run of digits in the answer is exactly the key.
bool passkey_answer_correct(std::string_view answer, int key);
// True once `text` holds a whole run of digits (digits, then something else): greedy decoding of
// an answer can stop there, since its first digit run cannot change any more.
bool passkey_answer_complete(std::string_view text);
// The key of one trial: 10000-99999 from a generator seeded by (seed, length, depth, trial), so
// every policy sees the same keys and adding a cell does not change the others.
int passkey_key(uint64_t seed, int64_t length, double depth_percent, int trial);

struct PasskeyOptions {
  std::vector<int64_t> lengths;
  std::vector<double> depths;  // percent
  int trials = 5;
  uint64_t seed = 1;
  int page_tokens = 32;
  int batch = 512;
  int answer_tokens = 8;  // greedy tokens generated at most
};

// Throws Error naming the first length that, with the answer, does not fit the model's context
// (or is below the prompt's fixed part).
void check_passkey_lengths(const model::Model& model, const PasskeyOptions& options);

struct PasskeyTrial {
  int key = 0;
  std::string answer;  // the greedy continuation as text
  bool correct = false;
};

struct PasskeyCell {
  int64_t length = 0;
  double depth = 0;
  int correct = 0;
  std::vector<PasskeyTrial> trials;
  double seconds = 0;  // wall time of this cell's trials
};

// A policy's answers against a baseline's, trial by trial (same length, depth and key): the
// paired comparison, far more sensitive than the accuracies. An answer differs when its first
// run of digits does.
struct PasskeyAgreement {
  int compared = 0;
  int differ = 0;
  int right_to_wrong = 0;  // the baseline right, this policy wrong
  int wrong_to_right = 0;
};

struct PolicyPasskey {
  format::KVPolicy policy;
  double bytes_per_token = 0;
  double bits_per_value = 0;
  std::vector<PasskeyCell> cells;  // [length][depth], lengths outer
  int correct = 0;
  int total = 0;
  double seconds = 0;
  std::optional<PasskeyAgreement> vs_baseline;  // set by compare_with_baseline
};

struct PasskeyReport {
  std::string model_path;
  std::string model_name;
  int64_t model_context = 0;
  PasskeyOptions options;
  int threads = 0;
  std::vector<PolicyPasskey> rows;
  double seconds = 0;
  std::string baseline;         // the compared-with policy (empty: no comparison)
  std::string baseline_source;  // "this run" or the report file it was read from
};

// Every policy x length x depth x trial: prefill the prompt (whole pages of a prompt prefix
// already in the policy's cache from an earlier trial are reused: at one length and depth every
// key's prompt is the same up to the key line), then greedy decoding until the first digit run
// ends, an end-of-generation token, or answer_tokens tokens. The prompts are built (tokenized)
// once for all policies. Progress names the policy and cell after each trial.
PasskeyReport evaluate_passkey(const model::Model& model,
                               const std::vector<format::KVPolicy>& policies,
                               const PasskeyOptions& options, ThreadPool& pool,
                               const Progress& progress = {});

// Sets every row's vs_baseline against `baseline` (trials matched by length, depth and key; the
// baseline may come from an earlier run with other trials, lengths or depths: only the trials both
// ran are compared) and records the baseline in the report.
void compare_with_baseline(PasskeyReport& report, const PolicyPasskey& baseline,
                           const std::string& source);
// The row of `policy` (its to_string() form) in a passkey report's JSON (render_passkey's),
// with its trials; throws Error naming `what` (the file) when it has none.
PolicyPasskey passkey_row_from_json(const nlohmann::json& report, const std::string& policy,
                                    const std::string& what);

// A grid per policy (rows: lengths, columns: depths, cells: correct / trials; per-cell seconds in
// the JSON), a summary table (with the paired comparison when a baseline was set) and accuracy
// against bytes per token as the chart.
Report render_passkey(const PasskeyReport& report, const std::string& command);

}  // namespace kvpack::eval
