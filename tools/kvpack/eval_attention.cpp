// `kvpack eval attention`: per-layer attention fidelity of K/V policies on q/k/v captured from the
// model over a text with an f32 cache.
#include <cstdio>
#include <functional>

#include "base/error.h"
#include "base/units.h"
#include "commands.h"
#include "eval/attention_fidelity.h"
#include "eval_common.h"
#include "kv_flags.h"

namespace kvpack::cli {
namespace {

struct Options {
  EvalCommon common;
  std::string file;
  std::string context = "512";
  int batch = 512;
  KvFlags kv;
  eval::FidelityOptions fidelity;
};

void run(const Options& o) {
  const auto model = load_model_with_tokenizer(o.common.model);
  const model::ModelSpec& hp = model->spec();
  const int64_t n = parse_count(o.context);
  if (n < 2) fail("-c {}: needs at least 2 tokens", o.context);
  if (n > hp.n_ctx_train) {
    std::fprintf(stderr, "kvpack: warning: -c %lld is beyond the %lld tokens %s was trained for\n",
                 static_cast<long long>(n), static_cast<long long>(hp.n_ctx_train),
                 o.common.model.c_str());
  }
  std::vector<int32_t> tokens = model->tokenizer()->encode(read_text_file(o.file), true, false);
  if (static_cast<int64_t>(tokens.size()) < n) {
    fail("{}: has {} tokens, fewer than -c {}", o.file, tokens.size(), n);
  }
  tokens.resize(static_cast<size_t>(n));
  const std::vector<format::KVPolicy> policies = eval_policies(o.kv, hp, o.common.page_tokens);

  ThreadPool pool(o.common.threads);
  const eval::AttentionCapture capture =
      eval::capture_attention(*model, tokens, o.batch, o.common.page_tokens, pool);
  ProgressBar bar("attention", !o.common.quiet);
  eval::FidelityReport rep =
      eval::evaluate_attention(*model, capture, policies, o.fidelity, pool, std::ref(bar));
  bar.finish();
  rep.model_path = o.common.model;
  emit(eval::render_attention(rep, command_line()), o.common);
}

}  // namespace

void add_eval_attention_command(CLI::App& eval) {
  auto o = std::make_shared<Options>();
  auto* cmd = eval.add_subcommand(
      "attention",
      "Per-layer attention fidelity of K/V policies (output error, logit bias and "
      "spread, top-k overlap, long-distance links, K vs V) on captured q/k/v");
  o->common.add_to(cmd);
  cmd->add_option("-f,--file", o->file, "Text file (its first -c tokens, BOS first)")->required();
  cmd->add_option("-c,--ctx-size", o->context, "Tokens of text to capture (512, 4k)")
      ->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass (capture)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  o->kv.add_to(cmd, /*repeatable=*/true, "one policy per format");
  cmd->add_option("--top-k", o->fidelity.top_k, "Attention weights compared by top-k overlap")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--long-distance", o->fidelity.long_distance,
                  "Tokens a link must span to count as long-distance")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
