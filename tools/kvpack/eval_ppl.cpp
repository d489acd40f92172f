// `kvpack eval ppl`: perplexity over consecutive chunks of a text (llama.cpp's method) and, for
// every policy against the baseline policy in the same run, next-token KL divergence, top-1
// agreement and the perplexity delta.
#include <cstdio>
#include <functional>

#include "base/error.h"
#include "base/units.h"
#include "commands.h"
#include "eval/perplexity.h"
#include "eval_common.h"
#include "kv_flags.h"

namespace kvpack::cli {
namespace {

struct Options {
  EvalCommon common;
  std::string file;
  std::string context = "512";
  int chunks = 0;
  int batch = 512;
  KvFlags kv;
  std::string baseline = "k=f16,v=f16";
};

void run(const Options& o) {
  const auto model = load_model_with_tokenizer(o.common.model);
  const model::ModelSpec& hp = model->spec();
  const model::Tokenizer& tok = *model->tokenizer();
  eval::PerplexityOptions po;
  po.context = parse_count(o.context);
  po.max_chunks = o.chunks;
  po.batch = o.batch;
  po.page_tokens = o.common.page_tokens;
  po.bos = tok.add_bos() ? tok.bos() : -1;
  const format::KVPolicy baseline = format::KVPolicy::parse(o.baseline);
  const std::vector<format::KVPolicy> policies = eval_policies(o.kv, hp, po.page_tokens);

  const std::vector<int32_t> tokens =
      tok.encode(read_text_file(o.file), /*add_special=*/true, /*parse_special=*/false);
  eval::perplexity_chunk_count(static_cast<int64_t>(tokens.size()), po);  // a short text fails here
  if (po.context > hp.n_ctx_train) {
    std::fprintf(stderr, "kvpack: warning: -c %lld is beyond the %lld tokens %s was trained for\n",
                 static_cast<long long>(po.context), static_cast<long long>(hp.n_ctx_train),
                 o.common.model.c_str());
  }
  ThreadPool pool(o.common.threads);
  ProgressBar bar("ppl", !o.common.quiet);
  eval::PerplexityReport rep =
      eval::evaluate_perplexity(*model, tokens, baseline, policies, po, pool, std::ref(bar));
  bar.finish();
  rep.model_path = o.common.model;
  emit(eval::render_perplexity(rep, command_line()), o.common);
}

}  // namespace

void add_eval_ppl_command(CLI::App& eval) {
  auto o = std::make_shared<Options>();
  auto* cmd = eval.add_subcommand(
      "ppl",
      "Perplexity over chunks of a text, and KL divergence / top-1 agreement of every "
      "policy against a baseline policy in the same run");
  o->common.add_to(cmd);
  cmd->add_option("-f,--file", o->file, "Text file (tokenized whole, then cut into chunks)")
      ->required();
  cmd->add_option("-c,--ctx-size", o->context, "Tokens per chunk (512, 4k)")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "Stop after this many chunks (0: every whole chunk)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  o->kv.add_to(cmd, /*repeatable=*/true, "one policy per format");
  cmd->add_option("--baseline", o->baseline, "The policy KLD and top-1 compare against")
      ->capture_default_str()
      ->type_name("POLICY");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
