// `kvpack eval passkey`: passkey retrieval (docs/passkey.md) per policy, length and depth.
#include <cstdio>
#include <functional>
#include <optional>

#include "base/error.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"
#include "eval/passkey.h"
#include "eval_common.h"
#include "kv_flags.h"

namespace kvpack::cli {
namespace {

// Used when --lengths is not given: those that fit the model (at least one: the longest that does).
const std::vector<int64_t> kDefaultLengths = {1024, 4096, 16384, 32768};

struct Options {
  EvalCommon common;
  std::vector<std::string> lengths;
  std::vector<std::string> depths{"0,25,50,75,100"};
  int trials = 5;
  uint64_t seed = 1;
  int batch = 512;
  KvFlags kv;
  std::string baseline = "k=f16,v=f16";
  std::string baseline_json;
};

std::vector<int64_t> lengths(const Options& o, const model::Model& m, int answer_tokens) {
  std::vector<int64_t> out;
  for (const auto& s : split_list(o.lengths)) out.push_back(parse_context(s, "--lengths"));
  if (!out.empty()) return out;
  const int64_t fit = m.spec().n_ctx_train - (answer_tokens - 1);
  for (int64_t l : kDefaultLengths) {
    if (l <= fit) out.push_back(l);
  }
  if (out.empty()) out.push_back(fit);
  return out;
}

std::vector<double> depths(const Options& o) {
  std::vector<double> out;
  for (const auto& s : split_list(o.depths)) {
    size_t used = 0;
    double d = -1;
    try {
      d = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || !(d >= 0 && d <= 100)) {
      fail("--depths: '{}' is not a percentage within 0..100", s);
    }
    out.push_back(d);
  }
  if (out.empty()) fail("--depths: needs at least one depth");
  return out;
}

// The baseline's answers from --baseline-json, read before the run so a bad file fails at once.
std::optional<eval::PolicyPasskey> baseline_from_file(const Options& o) {
  if (o.baseline_json.empty()) return std::nullopt;
  const std::string base = format::KVPolicy::parse(o.baseline).to_string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(o.baseline_json));
  } catch (const nlohmann::json::exception& e) {
    fail("--baseline-json: '{}' is not JSON: {}", o.baseline_json, e.what());
  }
  return eval::passkey_row_from_json(j, base, o.baseline_json);
}

// Pairs every row with the baseline policy's answers: from --baseline-json when given, else from
// this run when the baseline is one of its policies (else no comparison).
void pair_with_baseline(const Options& o, const std::optional<eval::PolicyPasskey>& loaded,
                        eval::PasskeyReport& rep) {
  if (loaded) {
    eval::compare_with_baseline(rep, *loaded, o.baseline_json);
    return;
  }
  const std::string base = format::KVPolicy::parse(o.baseline).to_string();
  for (const eval::PolicyPasskey& row : rep.rows) {
    if (row.policy.to_string() == base) {
      const eval::PolicyPasskey copy = row;
      eval::compare_with_baseline(rep, copy, "this run");
      return;
    }
  }
}

void run(const Options& o) {
  o.common.check_outputs();
  const auto model = load_model_with_tokenizer(o.common.model);
  eval::PasskeyOptions po;
  po.lengths = lengths(o, *model, po.answer_tokens);
  po.depths = depths(o);
  po.trials = o.trials;
  po.seed = o.seed;
  po.page_tokens = o.common.page_tokens;
  po.batch = o.batch;
  eval::check_passkey_lengths(*model, po);  // before anything slow
  format::KVPolicy::parse(o.baseline);      // a bad --baseline fails before the run too
  const std::optional<eval::PolicyPasskey> loaded = baseline_from_file(o);
  const std::vector<format::KVPolicy> policies = eval_policies(o.kv, model->spec(), po.page_tokens);
  ThreadPool pool(o.common.threads);
  ProgressBar bar("passkey", !o.common.quiet);
  eval::PasskeyReport rep = eval::evaluate_passkey(*model, policies, po, pool, std::ref(bar));
  bar.finish();
  rep.model_path = o.common.model;
  pair_with_baseline(o, loaded, rep);
  emit(eval::render_passkey(rep, command_line()), o.common);
}

}  // namespace

void add_eval_passkey_command(CLI::App& eval) {
  auto o = std::make_shared<Options>();
  auto* cmd =
      eval.add_subcommand("passkey",
                          "Passkey retrieval accuracy per policy, prompt length and key depth "
                          "(docs/passkey.md)");
  o->common.add_to(cmd);
  cmd->add_option("--lengths", o->lengths, "Prompt lengths in tokens (1k,4k,16k,32k)")
      ->default_str("1k,4k,16k,32k, those that fit the model's context");
  cmd->add_option("--depths", o->depths, "Key depths in percent of the filler")
      ->capture_default_str();
  cmd->add_option("--trials", o->trials, "Random keys per (length, depth)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  add_seed_flag(cmd, o->seed, "Seed of the keys");
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  o->kv.add_to(cmd, /*repeatable=*/true, "one policy per format");
  cmd->add_option("--baseline", o->baseline,
                  "Policy whose answers every policy is compared with, key by key (when it is in "
                  "this run or in --baseline-json)")
      ->capture_default_str();
  cmd->add_option("--baseline-json", o->baseline_json,
                  "An earlier `eval passkey --json`/-o report holding the baseline's answers, so a "
                  "grid split over several runs is paired with one baseline run")
      ->type_name("FILE");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
