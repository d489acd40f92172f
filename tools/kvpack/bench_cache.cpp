// `kvpack bench cache`: a workload simulator for the paged KV cache, no model needed. N chat
// sessions share a system prompt; each runs turns (a user message prefilled, a reply decoded
// token by token), some fork to regenerate a reply, some end and are replaced; when the budget
// runs out the least recently served session is preempted and recomputed later, as a server
// would. Prints the residency report, prefix reuse, evictions and the cost of cache operations.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string_view>

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

namespace kvpack::cli {
namespace {

using cache_bench::AfterRun;
using cache_bench::Costs;
using cache_bench::Options;
using cache_bench::Stats;

struct Session {
  bool live = false;
  cache::SeqId seq = 0;
  std::vector<int32_t> tokens;  // history, kept to recompute after preemption
  uint64_t last_served = 0;
};

class Simulator {
 public:
  Simulator(const Options& o, const cache::CacheConfig& config)
      : o_(o), cache_(config), rng_(o.seed), sessions_(static_cast<size_t>(o.sessions)) {
    // Rows are drawn from here (contents do not matter); 2 MiB stays in cache, as the rows a
    // model has just computed would.
    values_.resize(size_t{1} << 19);
    Rng g(o.seed ^ 0xabcdef);
    for (float& x : values_) x = static_cast<float>(g.normal());
    for (int i = 0; i < o.prefix; ++i) prompt_.push_back(static_cast<int32_t>(g.below(128000)));
  }

  cache::Cache& cache() { return cache_; }
  const std::vector<int32_t>& prompt() const { return prompt_; }
  std::vector<const Session*> live() const {
    std::vector<const Session*> out;
    for (const Session& s : sessions_) {
      if (s.live) out.push_back(&s);
    }
    return out;
  }

  // Ends every other live session (as at the end of a busy period); returns how many.
  int end_every_other() {
    int n = 0, seen = 0;
    for (Session& s : sessions_) {
      if (!s.live || seen++ % 2 == 1) continue;
      cache_.free(s.seq);
      s = Session{};
      ++n;
    }
    return n;
  }

  Stats run() {
    const double t0 = now_seconds();
    for (int round = 0; round < o_.turns; ++round) {
      for (size_t i = 0; i < sessions_.size(); ++i) turn(i);
    }
    stats_.seconds = now_seconds() - t0;
    return stats_;
  }

 private:
  int around(int mean) { return std::max(1, static_cast<int>(mean * (0.5 + rng_.uniform()))); }

  // One user message and one reply; the session is (re)started first if needed.
  void turn(size_t i) {
    Session& s = sessions_[i];
    if (!s.live) start(i);
    s.last_served = ++clock_;
    std::vector<int32_t> user(static_cast<size_t>(around(o_.user_tokens)));
    for (auto& t : user) t = static_cast<int32_t>(rng_.below(128000));
    prefill(i, user);
    const int gen = around(o_.gen_tokens);
    decode(i, gen);
    ++stats_.turns;
    if (rng_.uniform() < o_.fork_rate) regenerate(i, gen);
    if (rng_.uniform() < o_.end_rate) {  // the conversation ends; a new one takes the slot
      cache_.free(s.seq);
      s = Session{};
      ++stats_.ended;
    }
  }

  // A new session (or a preempted one coming back): reuse what the prefix index holds of its
  // history, recompute the rest.
  void start(size_t i) {
    Session& s = sessions_[i];
    if (s.tokens.empty()) s.tokens = prompt_;
    std::vector<int32_t> history;
    history.swap(s.tokens);
    s.seq = cache_.create();
    s.live = true;
    const int64_t reused = cache_.attach_prefix(s.seq, history);
    s.tokens.assign(history.begin(), history.begin() + reused);
    std::vector<int32_t> rest(history.begin() + reused, history.end());
    if (history.size() > prompt_.size()) stats_.recomputed_tokens += rest.size();  // preempted
    prefill(i, rest);
  }

  // The reply is regenerated on a fork, which then replaces the session (the user kept it).
  // A sliding window's pages the cut needs may be gone (evicted after the window released
  // them): then the kept history is recomputed, as a server would.
  void regenerate(size_t i, int gen) {
    Session& s = sessions_[i];
    const cache::SeqId parent = s.seq;
    s.seq = cache_.fork(parent);
    s.tokens.resize(s.tokens.size() - static_cast<size_t>(gen));
    try {
      cache_.truncate(s.seq, gen);
    } catch (const Error& e) {
      if (std::string_view(e.what()).find("no longer cached") == std::string_view::npos) throw;
      cache_.free(s.seq);
      cache_.free(parent);
      s.live = false;
      ++stats_.truncations_recomputed;
      start(i);
      decode(i, around(o_.gen_tokens));
      ++stats_.forks;
      return;
    }
    decode(i, around(o_.gen_tokens));
    cache_.free(parent);
    ++stats_.forks;
  }

  void prefill(size_t i, const std::vector<int32_t>& tokens) {
    constexpr size_t kChunk = 256;
    for (size_t at = 0; at < tokens.size(); at += kChunk) {
      const size_t n = std::min(kChunk, tokens.size() - at);
      extend(i, std::span<const int32_t>(tokens).subspan(at, n));
    }
  }

  void decode(size_t i, int n) {
    for (int t = 0; t < n; ++t) {
      const int32_t token = static_cast<int32_t>(rng_.below(128000));
      extend(i, std::span<const int32_t>(&token, 1));
    }
  }

  // add_tokens (preempting other sessions while the cache is full), then every layer's rows.
  void extend(size_t i, std::span<const int32_t> tokens) {
    Session& s = sessions_[i];
    while (true) {
      try {
        cache_.add_tokens(s.seq, tokens);
        break;
      } catch (const Error& e) {
        if (std::strncmp(e.what(), "kv cache full", 13) != 0 || !preempt_other(i)) throw;
      }
    }
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    const size_t row = static_cast<size_t>(o_.kv_heads) * o_.head_dim;
    const size_t need = tokens.size() * row;
    for (int l = 0; l < o_.layers; ++l) {
      const size_t off = rng_.below(values_.size() - need);
      cache_.append(s.seq, l, values_.data() + off, values_.data() + (values_.size() - need - off),
                    static_cast<int>(tokens.size()));
    }
  }

  bool preempt_other(size_t current) {
    Session* victim = nullptr;
    for (size_t j = 0; j < sessions_.size(); ++j) {
      Session& s = sessions_[j];
      if (j != current && s.live && (!victim || s.last_served < victim->last_served)) victim = &s;
    }
    if (!victim) return false;
    cache_.free(victim->seq);
    victim->live = false;  // keeps its history: start() recomputes it
    ++stats_.preempted;
    return true;
  }

  Options o_;
  cache::Cache cache_;
  Rng rng_;
  std::vector<Session> sessions_;
  std::vector<float> values_;
  std::vector<int32_t> prompt_;
  uint64_t clock_ = 0;
  Stats stats_;
};

// How many distinct copies of the system prompt's whole pages the live sessions hold.
int prompt_copies(Simulator& sim) {
  const size_t pages = sim.prompt().size() / static_cast<size_t>(sim.cache().config().page_tokens);
  std::vector<std::vector<uint32_t>> seen;
  for (const Session* s : sim.live()) {
    auto table = sim.cache().page_table(s->seq);
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
  cache::CacheConfig c = make_config(o, policy);
  c.budget_bytes = 0;
  c.n_pages = 1;
  c.n_pages = cache::sequence_pages(c, 33 * o.page_tokens, 0);  // 33 pages per group
  cache::Cache cache(c);
  const size_t row = static_cast<size_t>(o.kv_heads) * o.head_dim;
  std::vector<float> values(row * 4096);
  Rng g(5);
  for (float& x : values) x = static_cast<float>(g.normal());
  double seconds = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const cache::SeqId seq = cache.create();
    const int n = pass == 0 ? 33 * o.page_tokens : 1024;
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
