// `kvpack bench cache`: a workload simulator for the paged KV cache, no model needed. N chat
// sessions share a system prompt; each turn is a request, as a client sends it to `kvpack
// serve`: the conversation so far plus a user message as the prompt, a reply generated token by
// token. Requests run through the server's own scheduler (serve::Scheduler: admission, chunked
// prefill under a step budget, prefix reuse, preemption of the newest request when the cache is
// full, recompute), with random K/V appended for the rows it plans. Some replies are
// regenerated (the same prompt again), some sessions end and are replaced. Prints the residency
// report, prefix reuse, evictions and the cost of cache operations.
#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json_text.h"
#include "base/rng.h"
#include "base/timer.h"
#include "base/units.h"
#include "bench_cache.h"
#include "cli_flags.h"
#include "commands.h"
#include "kvpack/cache.h"
#include "kvpack/plan.h"
#include "serve/scheduler.h"

namespace kvpack::cli {
namespace {

using cache_bench::AfterRun;
using cache_bench::Costs;
using cache_bench::Options;
using cache_bench::Stats;
using RequestId = serve::Scheduler::Id;

// One session slot and its request in flight.
struct Slot {
  std::vector<int32_t> history;  // the conversation: system prompt, messages and replies
  size_t before_reply = 0;       // history's length before the last reply (a regeneration)
  RequestId request = 0;
  int target = 0, generated = 0;  // reply tokens to generate, and generated so far
  bool regenerating = false;
};

class Simulator {
 public:
  Simulator(const Options& o, const cache::CacheConfig& config)
      : o_(o),
        cache_(config),
        // kvpack serve's defaults (prefill chunk and step budget), every session in the batch.
        scheduler_({.max_running = o.sessions}, {&cache_}),
        rng_(o.seed),
        slots_(static_cast<size_t>(o.sessions)) {
    // Rows are drawn from here (contents do not matter); 2 MiB stays in cache, as the rows a
    // model has just computed would.
    values_.resize(size_t{1} << 19);
    Rng g(o.seed ^ 0xabcdef);
    for (float& x : values_) x = static_cast<float>(g.normal());
    for (int i = 0; i < o.prefix; ++i) prompt_.push_back(static_cast<int32_t>(g.below(128000)));
  }

  cache::Cache& cache() { return cache_; }
  const std::vector<int32_t>& prompt() const { return prompt_; }
  // The sequences of the running requests: the live sessions.
  std::vector<cache::SeqId> live() const {
    std::vector<cache::SeqId> out;
    for (const RequestId id : scheduler_.running()) out.push_back(scheduler_.entry(id).seq);
    return out;
  }

  // Ends every other running request (as at the end of a busy period); returns how many.
  int end_every_other() {
    const std::vector<RequestId> running = scheduler_.running();
    int n = 0;
    for (size_t i = 0; i < running.size(); i += 2, ++n) scheduler_.finish(running[i]);
    return n;
  }

  // Until --sessions x --turns turns are done; the requests still running are the live sessions.
  Stats run() {
    const double t0 = now_seconds();
    const uint64_t total = static_cast<uint64_t>(o_.sessions) * static_cast<uint64_t>(o_.turns);
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].history = prompt_;
      submit_turn(i);
    }
    const auto append_rows = [this](cache::Cache& c, cache::SeqId seq, int n) {
      const size_t need = static_cast<size_t>(n) * o_.kv_heads * o_.head_dim;
      for (int l = 0; l < o_.layers; ++l) {
        const size_t off = rng_.below(values_.size() - need);
        c.append(seq, l, values_.data() + off, values_.data() + (values_.size() - need - off), n);
      }
    };
    while (stats_.turns < total) {
      scheduler_.admit();
      if (scheduler_.plan().empty()) fail("bench cache: the scheduler planned no rows");
      for (const RequestId id : serve::step_without_model(scheduler_, append_rows)) {
        sample(id);
        if (stats_.turns == total) break;
      }
    }
    stats_.preempted = scheduler_.stats().preemptions;
    stats_.recomputed_tokens = scheduler_.stats().recomputed_tokens;
    stats_.seconds = now_seconds() - t0;
    return stats_;
  }

 private:
  int around(int mean) { return std::max(1, static_cast<int>(mean * (0.5 + rng_.uniform()))); }

  // A user message after the history, and a reply to generate.
  void submit_turn(size_t i) {
    Slot& s = slots_[i];
    for (int t = around(o_.user_tokens); t > 0; --t) {
      s.history.push_back(static_cast<int32_t>(rng_.below(128000)));
    }
    s.before_reply = s.history.size();
    s.regenerating = false;
    submit(i);
  }

  // The history up to the reply as a request's prompt.
  void submit(size_t i) {
    Slot& s = slots_[i];
    s.history.resize(s.before_reply);
    s.target = around(o_.gen_tokens);
    s.generated = 0;
    s.request = scheduler_.add(s.history, 0);
    slot_of_[s.request] = i;
  }

  // The request's tokens are all computed: a random token is "sampled"; the request ends with
  // its reply's last token (not computed, as in the server: the next turn's prompt holds it).
  void sample(RequestId id) {
    const size_t i = slot_of_.at(id);
    Slot& s = slots_[i];
    const auto token = static_cast<int32_t>(rng_.below(128000));
    if (++s.generated < s.target) {
      scheduler_.append(id, token);
      return;
    }
    s.history = scheduler_.entry(id).tokens;
    s.history.push_back(token);
    scheduler_.finish(id);
    slot_of_.erase(id);
    if (!s.regenerating) {
      ++stats_.turns;
      if (stats_.turns == static_cast<uint64_t>(o_.sessions) * static_cast<uint64_t>(o_.turns)) {
        return;
      }
      if (rng_.uniform() < o_.fork_rate) {  // the same prompt again: the reply is regenerated
        s.regenerating = true;
        ++stats_.forks;
        submit(i);
        return;
      }
    }
    if (rng_.uniform() < o_.end_rate) {  // the conversation ends; a new one takes the slot
      s.history = prompt_;
      ++stats_.ended;
    }
    submit_turn(i);
  }

  Options o_;
  cache::Cache cache_;
  serve::Scheduler scheduler_;
  Rng rng_;
  std::vector<Slot> slots_;
  std::unordered_map<RequestId, size_t> slot_of_;
  std::vector<float> values_;
  std::vector<int32_t> prompt_;
  Stats stats_;
};

// How many distinct copies of the system prompt's whole pages the live sessions hold.
int prompt_copies(Simulator& sim) {
  const size_t pages = sim.prompt().size() / static_cast<size_t>(sim.cache().config().page_tokens);
  std::vector<std::vector<uint32_t>> seen;
  for (const cache::SeqId seq : sim.live()) {
    auto table = sim.cache().page_table(seq);
    if (table.size() < pages) continue;
    table.resize(pages);
    if (std::find(seen.begin(), seen.end(), table) == seen.end()) seen.push_back(table);
  }
  return static_cast<int>(seen.size());
}

double time_encode(const cache::CacheConfig& c, const format::KVPolicy& policy) {
  std::vector<float> rows(static_cast<size_t>(c.page_tokens) * c.head_dim_k);
  Rng g(3);
  for (float& x : rows) x = static_cast<float>(g.normal());
  double total = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    const auto f = policy.layer(l, c.n_layers);
    for (auto [id, role] : {std::pair{f.k, format::Role::K}, std::pair{f.v, format::Role::V}}) {
      auto codec = format::make_codec(id, {role, c.head_dim_k, c.page_tokens, c.n_kv_heads,
                                           format::layer_seed(l, role, c.model_seed)});
      std::vector<uint8_t> slice(codec->slice_bytes());
      const double t0 = now_seconds();
      constexpr int kReps = 8;
      for (int r = 0; r < kReps; ++r) {
        for (int h = 0; h < c.n_kv_heads; ++h) {
          codec->encode(h, rows.data(), c.page_tokens, slice.data() + h * codec->head_bytes());
        }
      }
      total += (now_seconds() - t0) / kReps;
    }
  }
  return total * 1e6;
}

double copy_bandwidth() {
  const size_t n = size_t{64} << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {
    const double t0 = now_seconds();
    std::memcpy(b.data(), a.data(), n);
    best = std::min(best, now_seconds() - t0);
    a[r] = b[n - 1 - r];  // keep the copies observable
  }
  return 2.0 * n / best / 1e9;  // bytes read + written
}

cache::CacheConfig make_config(const Options& o, const format::KVPolicy& policy) {
  cache::CacheConfig c;
  c.n_layers = o.layers;
  c.n_kv_heads = o.kv_heads;
  c.head_dim_k = c.head_dim_v = o.head_dim;
  c.page_tokens = o.page_tokens;
  c.policy = policy;
  c.budget_bytes = parse_memory_bytes(o.budget, "--budget");
  c.hp_window = o.window;
  c.layer_window = o.layer_window;
  c.salt = fmt::format("bench-model {}x{}x{}", o.layers, o.kv_heads, o.head_dim);
  return c;
}

// The model shape: a preset's (`--model`), or the flags with an optional sliding pattern.
Options resolve_shape(Options o) {
  if (!o.model.empty()) {
    const plan::ModelShape m = plan::preset_shape(plan::find_preset(o.model));
    o.layers = m.n_layers();
    o.kv_heads = m.layers.at(0).kv_heads;
    o.head_dim = m.head_dim_k;
    o.layer_window.clear();
    for (const auto& l : m.layers) o.layer_window.push_back(static_cast<int>(l.window));
    return o;
  }
  if (o.swa_window < 0 || o.swa_period < 0)
    fail("bench cache: --swa-window and --swa-period must be >= 0");
  o.layer_window.clear();
  if (o.swa_window > 0) {
    for (int l = 0; l < o.layers; ++l) {
      const bool slides = o.swa_period == 0 || l % o.swa_period != o.swa_period - 1;
      o.layer_window.push_back(slides ? o.swa_window : 0);
    }
  }
  return o;
}

// One sequence decoding 1024 tokens one at a time into a small cache whose pages were touched
// by a first pass: the steady cost of append (staging, finite check, encoding) per token.
double time_decode(const Options& o, const format::KVPolicy& policy) {
  constexpr int kDecoded = 1024;
  // The first pass touches every page the second needs (at least 33 a group; 16-token pages
  // need 65 for 1024 tokens, which a cache of 33 refused as full).
  const int touched = std::max(33 * o.page_tokens, kDecoded + o.page_tokens);
  cache::CacheConfig c = make_config(o, policy);
  c.budget_bytes = 0;
  c.n_pages = 1;
  c.n_pages = cache::sequence_pages(c, touched, 0);
  cache::Cache cache(c);
  const size_t row = static_cast<size_t>(o.kv_heads) * o.head_dim;
  std::vector<float> values(row * 4096);
  Rng g(5);
  for (float& x : values) x = static_cast<float>(g.normal());
  double seconds = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const cache::SeqId seq = cache.create();
    const int n = pass == 0 ? touched : kDecoded;
    const double t0 = now_seconds();
    for (int t = 0; t < n; ++t) {
      const int32_t token = pass * 100000 + t;
      cache.add_tokens(seq, std::span<const int32_t>(&token, 1));
      const float* k = values.data() + (t % 2048) * row;
      for (int l = 0; l < o.layers; ++l) cache.append(seq, l, k, k + 2048 * row, 1);
    }
    seconds = (now_seconds() - t0) / n;
    cache.free(seq);
  }
  return seconds * 1e6;
}

void run_bench_cache(const Options& flags) {
  const Options o = resolve_shape(flags);
  if (o.sessions < 1 || o.prefix < 0 || o.turns < 1 || o.user_tokens < 1 || o.gen_tokens < 1) {
    fail("bench cache: --sessions, --turns, --user-tokens and --gen-tokens must be positive");
  }
  const format::KVPolicy policy = o.kv.policies({format::KVPolicy()}).front();
  const cache::CacheConfig config = make_config(o, policy);
  Simulator sim(o, config);
  const Stats st = sim.run();
  const cache::Residency r = sim.cache().residency();
  const int copies = prompt_copies(sim);
  const int live = static_cast<int>(sim.live().size());
  const int ended = sim.end_every_other();
  const uint64_t moved = sim.cache().compact();
  const uint64_t released = sim.cache().shrink();
  Costs costs;
  costs.encode_us = time_encode(config, policy);
  costs.encode_f16_us = time_encode(config, format::KVPolicy());
  costs.decode_us = time_decode(o, policy);
  costs.decode_f16_us = time_decode(o, format::KVPolicy());
  costs.copy_gbs = copy_bandwidth();
  cache_bench::print_report(
      {o, policy, sim.prompt().size(), st, r, copies, {live, ended, moved, released}, costs});
}

}  // namespace

void add_bench_cache_command(CLI::App& bench) {
  auto opt = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand(
      "cache",
      "Simulate chat sessions sharing a system prompt in the paged KV cache: residency, "
      "prefix reuse, evictions and operation costs (no model needed)");
  // Bounds: a typo must not start a simulation of hours or gigabytes of token histories.
  cmd->add_option("--sessions", opt->sessions, "Concurrent sessions")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--prefix", opt->prefix, "System prompt tokens every session starts with")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--budget", opt->budget, "KV cache memory budget (e.g. 1GiB, 512MiB)")
      ->capture_default_str();
  cmd->add_option("--turns", opt->turns, "Turns per session slot")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--user-tokens", opt->user_tokens, "Mean user message length (tokens)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--gen-tokens", opt->gen_tokens, "Mean reply length (tokens, decoded one by one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--fork-rate", opt->fork_rate,
                  "Probability a turn's reply is regenerated on a fork")
      ->capture_default_str()
      ->check(finite_range(0.0, 1.0));
  cmd->add_option("--end-rate", opt->end_rate,
                  "Probability a session ends after a turn (a new one takes its slot)")
      ->capture_default_str()
      ->check(finite_range(0.0, 1.0));
  cmd->add_option("--model", opt->model,
                  "A preset's KV shape and sliding windows (kvpack plan --list-presets), e.g. "
                  "gemma-3-4b; replaces --layers, --kv-heads, --head-dim and --swa-*");
  cmd->add_option("--swa-window", opt->swa_window,
                  "Sliding-window layers keep this many tokens (0: every layer attends to all)")
      ->capture_default_str();
  cmd->add_option("--swa-period", opt->swa_period,
                  "With --swa-window: layer l slides unless l % N == N - 1 (Gemma 3: 6; 0: all)")
      ->capture_default_str();
  cmd->add_option("--layers", opt->layers, "Model layers")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-heads", opt->kv_heads, "KV heads per layer")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--head-dim", opt->head_dim, "Head dimension")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--page-tokens", opt->page_tokens, "Tokens per page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_option("--window", opt->window, "High-precision window: newest tokens kept in f32")
      ->capture_default_str();
  add_seed_flag(cmd, opt->seed, "Workload seed");
  cmd->add_flag("--json", opt->json, "Print JSON instead of tables");
  opt->kv.add_to(cmd, false);
  cmd->callback([opt] { run_bench_cache(*opt); });
}

}  // namespace kvpack::cli
