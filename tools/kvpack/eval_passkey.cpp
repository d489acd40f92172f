// `kvpack eval passkey`: passkey retrieval (docs/passkey.md) per policy, length and depth.
#include <cstdio>
#include <functional>

#include "base/error.h"
#include "base/units.h"
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
};

std::vector<int64_t> lengths(const Options& o, const model::Model& m, int answer_tokens) {
  std::vector<int64_t> out;
  for (const auto& s : split_list(o.lengths)) out.push_back(parse_count(s));
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

void run(const Options& o) {
  const auto model = load_model_with_tokenizer(o.common.model);
  eval::PasskeyOptions po;
  po.lengths = lengths(o, *model, po.answer_tokens);
  po.depths = depths(o);
  po.trials = o.trials;
  po.seed = o.seed;
  po.page_tokens = o.common.page_tokens;
  po.batch = o.batch;
  eval::check_passkey_lengths(*model, po);  // before anything slow
  const std::vector<format::KVPolicy> policies = eval_policies(o.kv, model->spec(), po.page_tokens);
  ThreadPool pool(o.common.threads);
  ProgressBar bar("passkey", !o.common.quiet);
  eval::PasskeyReport rep = eval::evaluate_passkey(*model, policies, po, pool, std::ref(bar));
  bar.finish();
  rep.model_path = o.common.model;
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
  cmd->add_option("--seed", o->seed, "Seed of the keys")->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  o->kv.add_to(cmd, /*repeatable=*/true, "one policy per format");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
