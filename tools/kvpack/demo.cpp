// `kvpack demo`: the second half of `make run`. The probe model (models/probe.gguf) retrieves a
// passkey from one long prompt through each K/V policy's paged cache: the answer, whether it is
// right, the bytes per token, the residency and the speeds, one row per policy.
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/table.h"
#include "base/timer.h"
#include "base/units.h"
#include "commands.h"
#include "eval/passkey.h"
#include "eval/policy_cost.h"
#include "kv_flags.h"
#include "kvpack/model.h"
#include "model/session.h"

namespace kvpack::cli {
namespace {

// The repository's probe model, relative to the repository root (where `make run` runs).
constexpr const char* kProbeModel = "models/probe.gguf";
// f16, then the 8-bit, mixed 4/8-bit and TurboQuant 4- and 3-bit caches.
const std::vector<std::string> kDefaultPolicies = {"k=f16,v=f16", "k=q8,v=q8", "k=q4,v=q8",
                                                   "k=turbo4,v=turbo4", "k=turbo3,v=turbo3"};

struct Options {
  std::string model = kProbeModel;
  std::string length = "4096";
  double depth = 50;
  int key = 0;  // 0: drawn from --seed
  uint64_t seed = 1;
  int answer_tokens = 8;
  int threads = 0;
  int batch = 512;
  int page_tokens = 32;
  KvFlags kv;
};

struct Row {
  std::string answer;  // the greedy continuation, as text
  bool correct = false;
  double bytes_per_token = 0;
  uint64_t active_bytes = 0;  // the arena pages the sequence holds, after the answer
  uint64_t reserved_bytes = 0;
  int64_t prefill_tokens = 0;
  double prefill_s = 0;
  int64_t decode_tokens = 0;
  double decode_s = 0;
};

// The prompt through a fresh cache of `policy`, then greedy decoding as `kvpack eval passkey`
// does it: until the first digit run ends, an end-of-generation token or answer_tokens tokens.
Row retrieve(const model::Model& model, const format::KVPolicy& policy,
             std::span<const int32_t> prompt, int key, const Options& o, ThreadPool& pool) {
  const int64_t context = static_cast<int64_t>(prompt.size()) + o.answer_tokens;
  cache::Cache cache(model.cache_config(policy, context, o.page_tokens));
  model::Forward fwd(model, cache, pool, {.max_chunk = o.batch, .n_ctx = context});
  const cache::SeqId seq = cache.create();
  Row row;
  row.bytes_per_token = static_cast<double>(cache.page_bytes()) / o.page_tokens;
  // Greedy (temperature 0), stopping as eval passkey does.
  model::Session session(model.tokenizer(),
                         {.sampling = {.temperature = 0},
                          .max_tokens = o.answer_tokens,
                          .stop_when = eval::passkey_answer_complete},
                         {prompt.begin(), prompt.end()});
  const model::GenerationTimings t = model::generate(fwd, seq, session);
  row.answer = session.text();
  row.prefill_tokens = t.prefill_tokens;
  row.prefill_s = t.prefill_s;
  row.decode_tokens = t.decode_tokens;
  row.decode_s = t.decode_s;
  row.correct = eval::passkey_answer_correct(row.answer, key);
  const cache::Residency r = cache.residency();
  row.active_bytes = r.active.bytes + r.shared.bytes;
  row.reserved_bytes = r.reserved.bytes;
  return row;
}

// The answer for a table cell: surrounding whitespace dropped, control characters escaped.
std::string answer_cell(const std::string& text) {
  const size_t b = text.find_first_not_of(" \n\t"), e = text.find_last_not_of(" \n\t");
  std::string out = "\"";
  if (b != std::string::npos) {
    for (char c : text.substr(b, e - b + 1)) {
      out += static_cast<unsigned char>(c) < 0x20 ? fmt::format("\\x{:02x}", c) : std::string(1, c);
    }
  }
  return out + "\"";
}

std::string rate(int64_t tokens, double seconds) {
  return seconds > 0 ? fmt::format("{:.0f}", static_cast<double>(tokens) / seconds) : "-";
}

void run(const Options& o) {
  if (!std::filesystem::exists(o.model)) {
    fail(
        "{}: no such file (the demo needs the probe model: run it from the repository root, or "
        "pass -m FILE)",
        o.model);
  }
  const auto model = model::Model::load(o.model);
  if (model->tokenizer() == nullptr) fail("{}: has no tokenizer; kvpack demo needs one", o.model);
  const model::ModelSpec& hp = model->spec();
  eval::PasskeyOptions po;
  po.lengths = {parse_count(o.length)};
  po.answer_tokens = o.answer_tokens;
  eval::check_passkey_lengths(*model, po);
  if (o.key != 0 && o.key < 10000) fail("--key {}: a passkey has 5 digits (10000-99999)", o.key);
  const int64_t length = po.lengths[0];
  const int key = o.key != 0 ? o.key : eval::passkey_key(o.seed, length, o.depth, 0);
  const eval::PasskeyPrompt prompt =
      eval::PasskeyPromptBuilder(*model->tokenizer()).build(length, o.depth, key);
  std::vector<format::KVPolicy> fallback;
  for (const auto& p : kDefaultPolicies) fallback.push_back(format::KVPolicy::parse(p));
  const std::vector<format::KVPolicy> policies = o.kv.policies(fallback);
  for (const auto& p : policies)
    p.validate(hp.n_layers(), hp.head_dim_k, hp.head_dim_v, o.page_tokens);

  ThreadPool pool(o.threads);
  std::printf(
      "kvpack demo: passkey retrieval by %s (%s: %d layers, %d query / %d KV heads of dim %d, "
      "trained at %lld tokens), %d threads\n",
      o.model.c_str(), hp.name.c_str(), hp.n_layers(), hp.n_heads(), hp.n_kv_heads(), hp.head_dim_k,
      static_cast<long long>(hp.n_ctx_train), pool.size());
  std::printf(
      "prompt: %lld tokens of filler with the key %d at depth %g%% (token %lld), then \"What is "
      "the pass key?\"\n\n",
      static_cast<long long>(length), key, o.depth, static_cast<long long>(prompt.key_pos));
  std::fflush(stdout);

  Table table({"K/V", "answer", "correct", "B/token", "KV active / reserved", "prefill tok/s",
               "decode tok/s"});
  table.align_left(0).align_left(1).align_left(2);
  const double start = now_seconds();
  int correct = 0;
  for (const format::KVPolicy& policy : policies) {
    const Row r = retrieve(*model, policy, prompt.tokens, key, o, pool);
    correct += r.correct;
    table.add_row({eval::policy_label(policy), answer_cell(r.answer), r.correct ? "yes" : "NO",
                   fmt::format("{:.1f}", r.bytes_per_token),
                   format_bytes(static_cast<double>(r.active_bytes)) + " / " +
                       format_bytes(static_cast<double>(r.reserved_bytes)),
                   rate(r.prefill_tokens, r.prefill_s), rate(r.decode_tokens, r.decode_s)});
  }
  std::printf("%s\n", table.to_text().c_str());
  std::printf(
      "%d of %zu policies retrieved the key (%.1f s).\nB/token: K and V of one token in all "
      "layers; active: the cache pages holding the prompt and answer; reserved: the arena for "
      "%lld tokens.\n",
      correct, policies.size(), now_seconds() - start,
      static_cast<long long>(length + o.answer_tokens));
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "demo",
      "The probe model retrieves a passkey from a long prompt through each K/V policy's cache "
      "(the second part of `make run`)");
  cmd->add_option("-m,--model", o->model, "GGUF model trained on docs/passkey.md's prompt")
      ->capture_default_str();
  cmd->add_option("-l,--length", o->length, "Prompt length in tokens (4096, 2k)")
      ->capture_default_str();
  cmd->add_option("-d,--depth", o->depth, "Depth of the key line in percent of the filler")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--key", o->key, "The passkey, 10000-99999 (0: drawn from --seed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 99999));
  cmd->add_option("--seed", o->seed, "Seed the key is drawn from when --key is 0")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (0: one per core)")->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "Prefill tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--page-tokens", o->page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  o->kv.add_to(cmd, /*repeatable=*/true, "f16/f16, q8/q8, q4/q8, turbo4/turbo4, turbo3/turbo3");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
