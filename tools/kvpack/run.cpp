// `kvpack run`: load a GGUF, prefill the prompt through the paged KV cache, sample and stream the
// continuation to stdout; speeds, KV bytes per token and the cache residency go to stderr.
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "base/error.h"
#include "base/timer.h"
#include "base/units.h"
#include "commands.h"
#include "kv_flags.h"
#include "kvpack/model.h"
#include "model/sampler.h"
#include "model/session.h"
#include "run_chat.h"

namespace kvpack::cli {
namespace {

struct Options {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  int n_predict = 128;
  std::string context;  // empty: 4096, or the model's training context if shorter
  int threads = 0;
  int batch = 256;
  int page_tokens = 32;
  KvFlags kv;
  model::SamplerConfig sampling;
  int64_t seed = -1;
  bool display_prompt = true;
  bool chat = false;  // --chat: the prompt (or each line of stdin) is a user turn
  bool prompt_given = false;
  std::string system_prompt;
  std::string chat_template_file;
};

std::string read_prompt(const Options& o) {
  if (o.prompt_file.empty()) return o.prompt;
  std::ifstream f(o.prompt_file, std::ios::binary);
  if (!f) fail("cannot read the prompt file '{}'", o.prompt_file);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The prompt's token ids: BOS (where the vocabulary adds it) and the text; special-token text
// such as "<s>" becomes that token, as in llama.cpp.
std::vector<int32_t> tokenize(const model::Tokenizer& tok, const std::string& text,
                              int64_t context) {
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/true);
  if (ids.empty()) {
    if (tok.bos() == model::kNoToken) fail("the prompt is empty and the vocabulary has no BOS");
    ids.push_back(tok.bos());
  }
  if (static_cast<int64_t>(ids.size()) > context) {
    fail("the prompt is {} tokens, longer than the context of {} tokens (-c)", ids.size(), context);
  }
  return ids;
}

void write_out(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_stats(const model::GenerationTimings& t, const cache::Cache& cache, const Options& o,
                 uint64_t seed) {
  const auto rate = [](int64_t n, double s) { return s > 0 ? n / s : 0.0; };
  std::fprintf(stderr, "\n\nkvpack: prefill %6lld tokens in %8.3f s (%8.1f tokens/s)\n",
               static_cast<long long>(t.prefill_tokens), t.prefill_s,
               rate(t.prefill_tokens, t.prefill_s));
  std::fprintf(stderr, "kvpack: decode  %6lld tokens in %8.3f s (%8.1f tokens/s)\n",
               static_cast<long long>(t.decode_tokens), t.decode_s,
               rate(t.decode_tokens, t.decode_s));
  const cache::CacheConfig& c = cache.config();
  std::fprintf(
      stderr, "kvpack: KV cache %s: %.1f bytes/token (%s per %d-token page), %d threads",
      c.policy.to_string().c_str(), static_cast<double>(cache.page_bytes()) / c.page_tokens,
      format_bytes(static_cast<double>(cache.page_bytes())).c_str(), c.page_tokens, o.threads);
  if (o.sampling.temperature > 0) std::fprintf(stderr, ", seed %llu", (unsigned long long)seed);
  std::fprintf(stderr, "\n%s", cache.residency().to_table().c_str());
}

void run(Options o) {
  if (!o.chat && (!o.system_prompt.empty() || !o.chat_template_file.empty())) {
    fail("--system-prompt and --chat-template-file need --chat");
  }
  const auto model = model::Model::load(o.model);
  const model::Tokenizer* tok = model->tokenizer();
  if (tok == nullptr) {
    fail(
        "{}: has no tokenizer (tokenizer.ggml.model is absent or 'none'); kvpack run needs one "
        "(kvpack bench decode does not)",
        o.model);
  }
  const int64_t context = o.context.empty() ? std::min<int64_t>(4096, model->spec().n_ctx_train)
                                            : parse_count(o.context);
  if (context < 1) fail("-c {}: the context must be at least one token", o.context);
  if (context > model->spec().n_ctx_train) {
    std::fprintf(stderr,
                 "kvpack: warning: context %lld is beyond the %lld tokens %s was trained for\n",
                 static_cast<long long>(context), static_cast<long long>(model->spec().n_ctx_train),
                 o.model.c_str());
  }
  const std::vector<format::KVPolicy> policies = o.kv.policies({format::KVPolicy()});
  if (policies.size() != 1) fail("kvpack run takes one K/V policy, got {}", policies.size());
  const std::string prompt_text = read_prompt(o);
  const std::vector<int32_t> prompt =
      o.chat ? std::vector<int32_t>{} : tokenize(*tok, prompt_text, context);

  ThreadPool pool(o.threads);
  o.threads = pool.size();
  cache::Cache cache(model->cache_config(policies[0], context, o.page_tokens));
  model::Forward fwd(*model, cache, pool, {.max_chunk = o.batch, .n_ctx = context});
  const uint64_t seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  o.sampling.seed = seed;
  const cache::SeqId seq = cache.create();
  if (o.chat) {
    model::Sampler sampler(o.sampling);
    const ChatRunTotals c = run_chat(*model, fwd, cache, seq, sampler,
                                     {.system_prompt = o.system_prompt,
                                      .template_file = o.chat_template_file,
                                      .one_shot = o.prompt_given || !o.prompt_file.empty(),
                                      .prompt = prompt_text,
                                      .n_predict = o.n_predict,
                                      .context = context});
    print_stats({c.prompt_tokens, c.prompt_s, c.decode_evals, c.decode_s}, cache, o, seed);
    return;
  }
  model::StreamDecoder echo(*tok);
  model::Session session(tok,
                         {.sampling = o.sampling,
                          .max_tokens = o.n_predict < 0 ? -1 : o.n_predict,
                          .context = context},
                         prompt);
  // The prompt is echoed once it is in the cache, so a failed prefill is only its error line.
  const model::GenerationTimings t = model::generate(
      fwd, seq, session, 0, [](const model::SessionStep& step) { write_out(step.text); },
      [&] {
        // Not flushed: a character the prompt leaves incomplete ends in the first piece.
        if (o.display_prompt) {
          for (int32_t id : prompt) write_out(echo.push(id));
        }
      });
  print_stats(t, cache, o, seed);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "run", "Generate text: prefill the prompt into the paged KV cache, then sample and stream");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->required();
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Prompt text (\"\" starts from BOS alone)");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from this file")->excludes(p);
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (-1: until the end of text)")
      ->capture_default_str();
  cmd->add_flag("!--no-display-prompt", o->display_prompt,
                "Print only the generated text, not the prompt before it");
  cmd->add_option("-c,--ctx-size", o->context, "Context: tokens the cache holds (4096, 32k)")
      ->default_str("4096, or the model's training context if shorter");
  cmd->add_option("-t,--threads", o->threads, "Threads (0: one per core)")->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "Prompt tokens per forward chunk")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--page-tokens", o->page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  o->kv.add_to(cmd, /*repeatable=*/false);
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed (-1: random, printed at the end)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n,
                  "Recent tokens the repetition penalty looks at")
      ->capture_default_str();
  cmd->add_flag("--chat", o->chat,
                "Chat: format the prompt (or each line of stdin when there is no "
                "-p/-f) as a user turn with the model's chat template, stream replies");
  cmd->add_option("--sys,--system-prompt", o->system_prompt, "System prompt of the chat (--chat)");
  cmd->add_option("--chat-template-file", o->chat_template_file,
                  "Jinja chat template to use instead of the GGUF's (--chat)");
  cmd->callback([o, p] {
    o->prompt_given = p->count() > 0;
    run(*o);
  });
}

}  // namespace kvpack::cli
