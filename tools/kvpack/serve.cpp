// `kvpack serve`: an OpenAI-compatible HTTP server over one model and its paged K/V pools. The
// work is src/serve's (Engine, HttpServer); this file reads the flags, loads the model while
// /health answers 503, and turns SIGTERM / SIGINT into a drain: new requests refused, running
// ones finished within --grace seconds, exit 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "base/terminal.h"
#include "base/timer.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"
#include "kv_flags.h"
#include "kvpack/model.h"
#include "model/gguf.h"
#include "serve/http_server.h"

namespace kvpack::cli {
namespace {

struct Options {
  std::string model;
  std::string alias;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int queue = 64;
  std::string context;  // empty: 4096, or the model's training context if shorter
  std::string budget;   // empty: --parallel full contexts per pool
  int threads = 0;
  int batch = 256;
  int step_tokens = 512;
  int page_tokens = 32;
  double grace = 30;
  KvFlags kv;
};

// SIGTERM and SIGINT are blocked in every thread and taken by sigwait() in main's, so no
// handler runs inside the server's threads.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

serve::EngineConfig engine_config(const Options& o, const model::Model& model) {
  serve::EngineConfig c;
  c.policies = o.kv.policies({format::KVPolicy()});
  c.context = o.context.empty() ? std::min<int64_t>(4096, model.spec().n_ctx_train)
                                : parse_context(o.context, "-c");
  c.max_running = o.parallel;
  c.max_waiting = o.queue;
  c.prefill_chunk = o.batch;
  c.step_tokens = o.step_tokens;
  c.page_tokens = o.page_tokens;
  c.budget_bytes = o.budget.empty() ? 0 : parse_memory_bytes(o.budget, "--kv-budget");
  c.threads = o.threads;
  for (const auto& p : c.policies) {
    const model::ModelSpec& hp = model.spec();
    p.validate(hp.n_layers(), hp.head_dim_k, hp.head_dim_v, o.page_tokens);
  }
  return c;
}

// Waits for SIGTERM/SIGINT, then drains: /health turns 503, new requests get 503, and the
// engine finishes what it has for up to `grace` seconds before aborting the rest.
void serve_until_signal(serve::HttpServer& http, serve::Engine& engine, double grace) {
  const sigset_t set = stop_signals();
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "kvpack: %s: draining (up to %.0f s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", grace);
  engine.drain();
  const double deadline = now_seconds() + grace;
  while (!engine.idle() && now_seconds() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  engine.stop();  // aborts whatever outlived the grace period
  http.stop();
}

void run(const Options& o) {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server
  if (!std::filesystem::exists(o.model)) fail("{}: no such file", o.model);

  serve::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.http_threads = o.parallel + o.queue + 8;
  serve::HttpServer http(so);
  const int port = http.bind();
  http.start();
  // Nothing is printed until the model is loaded, so a model that fails to load is one error
  // line; /health answers 503 meanwhile.

  const auto model = model::Model::load(o.model);
  serve::Engine engine(*model, engine_config(o, *model));
  const std::string id =
      o.alias.empty() ? std::filesystem::path(o.model).filename().string() : o.alias;
  serve::ChatPrompt chat = serve::ChatPrompt::for_model(*model);
  const std::string chat_name = chat.name();
  http.attach(engine, std::move(chat), id);
  const serve::EngineConfig& c = engine.config();
  std::fprintf(stderr, "kvpack: listening on http://%s:%d\n", terminal_safe(o.host).c_str(), port);
  for (const serve::PoolGauges& p : engine.pool_gauges()) {
    std::fprintf(stderr, "kvpack: pool %s: %s in %llu pages of %d tokens\n", p.kv.c_str(),
                 format_bytes(static_cast<double>(p.residency.reserved.bytes)).c_str(),
                 static_cast<unsigned long long>(p.residency.reserved.pages), c.page_tokens);
  }
  std::fprintf(stderr,
               "kvpack: ready: model %s, context %lld, --parallel %d, queue %d, chat format %s\n",
               terminal_safe(id).c_str(), static_cast<long long>(c.context), c.max_running,
               c.max_waiting, terminal_safe(chat_name).c_str());
  serve_until_signal(http, engine, o.grace);
  std::fprintf(stderr, "kvpack: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server: many sessions over shared, compressed K/V pages");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->required();
  cmd->add_option("-a,--alias", o->alias, "Model id in responses (default: the file name)");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port, printed on stderr)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--parallel", o->parallel, "Requests in the running batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--queue", o->queue, "Requests queued beyond the batch (more get 429)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("-c,--ctx-size", o->context, "Longest request: prompt and generation (4096, 8k)")
      ->default_str("4096, or the model's training context if shorter");
  cmd->add_option("--kv-budget", o->budget, "K/V arena bytes, all pools together (e.g. 512MiB)")
      ->default_str("--parallel full contexts per pool");
  add_threads_flag(cmd, o->threads);
  cmd->add_option("-b,--batch-size", o->batch, "Prompt tokens of one request per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--step-tokens", o->step_tokens, "Prompt tokens per step across requests")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--page-tokens", o->page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_option("--grace", o->grace, "Seconds running requests get to finish after SIGTERM")
      ->capture_default_str()
      ->check(finite_range(0.0, 3600.0));
  o->kv.add_to(cmd, /*repeatable=*/true,
               "k=f16,v=f16 (each --kv is a pool; the first is the default, a request's \"kv\" "
               "field picks another)");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
