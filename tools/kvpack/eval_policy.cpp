// `kvpack eval policy`: per-layer K/V formats within a budget from measured attention
// sensitivity, confirmed by KL divergence against the uniform policies of the same size.
#include <cstdio>
#include <functional>

#include "base/error.h"
#include "base/units.h"
#include "commands.h"
#include "eval/policy_cost.h"
#include "eval/policy_eval.h"
#include "eval_common.h"

namespace kvpack::cli {
namespace {

struct Options {
  EvalCommon common;
  std::string file;
  std::string context = "512";
  int chunks = 4;
  int batch = 512;
  double bits = 0;
  std::string budget;
  std::string budget_context;
  std::vector<std::string> formats;
  int compare = 4;
  std::string baseline = "k=f16,v=f16";
};

// Bytes per token from --bits or --budget (over --budget-context tokens).
double budget_bytes(const Options& o, const model::ModelSpec& hp, std::string* text) {
  if ((o.bits > 0) == !o.budget.empty())
    fail("eval policy: give exactly one of --bits and --budget");
  if (o.bits > 0) {
    *text = fmt::format("{:g} bits per value", o.bits);
    return o.bits * eval::values_per_token(hp) / 8;
  }
  const int64_t ctx = o.budget_context.empty() ? hp.n_ctx_train : parse_count(o.budget_context);
  if (ctx < 1) fail("--budget-context must be at least one token");
  const uint64_t bytes = parse_bytes(o.budget);
  *text = fmt::format("{} of K/V for {} tokens", format_bytes(static_cast<double>(bytes)),
                      format_count(ctx));
  return static_cast<double>(bytes) / static_cast<double>(ctx);
}

void run(const Options& o) {
  const auto model = load_model_with_tokenizer(o.common.model);
  const model::ModelSpec& hp = model->spec();
  const model::Tokenizer& tok = *model->tokenizer();
  eval::PolicySearchOptions so;
  so.budget_bytes_per_token = budget_bytes(o, hp, &so.budget_text);
  so.compare = o.compare;
  so.ppl.context = parse_count(o.context);
  so.ppl.max_chunks = o.chunks;
  so.ppl.batch = o.batch;
  so.ppl.page_tokens = o.common.page_tokens;
  so.ppl.bos = tok.add_bos() ? tok.bos() : -1;
  for (const auto& f : split_list(o.formats)) so.formats.push_back(format::parse_format(f));
  if (so.formats.empty()) so.formats = eval::default_search_formats();
  const format::KVPolicy baseline = format::KVPolicy::parse(o.baseline);

  const std::vector<int32_t> tokens = tok.encode(read_text_file(o.file), true, false);
  ThreadPool pool(o.common.threads);
  ProgressBar bar("policy", !o.common.quiet);
  eval::PolicySearchReport rep =
      eval::search_policy(*model, tokens, baseline, so, pool, std::ref(bar));
  bar.finish();
  rep.model_path = o.common.model;
  emit(eval::render_policy_search(rep, command_line()), o.common);
}

}  // namespace

void add_eval_policy_command(CLI::App& eval) {
  auto o = std::make_shared<Options>();
  auto* cmd = eval.add_subcommand(
      "policy",
      "Search per-layer K and V formats within a budget from measured attention "
      "sensitivity, confirmed by KLD against uniform policies of the same size");
  o->common.add_to(cmd);
  cmd->add_option("-f,--file", o->file, "Text file: one chunk calibrates, the others confirm")
      ->required();
  cmd->add_option("--bits", o->bits, "Budget: average stored bits per K/V value (e.g. 6)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--budget", o->budget, "Budget: K/V bytes for --budget-context tokens (2GiB)");
  cmd->add_option("--budget-context", o->budget_context, "Tokens --budget must hold")
      ->default_str("the model's context");
  cmd->add_option("-c,--ctx-size", o->context, "Tokens per chunk (calibration and confirmation)")
      ->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "Confirmation chunks (0: all but the calibration one)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--formats", o->formats, "Candidate formats (comma-separated)")
      ->default_str("every format but f32 and bf16");
  cmd->add_option("--compare", o->compare, "Uniform policies within the budget to confirm against")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--baseline", o->baseline, "The policy KLD compares against")
      ->capture_default_str()
      ->type_name("POLICY");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
