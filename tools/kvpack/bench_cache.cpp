// `kvpack bench cache`: a workload simulator for the paged KV cache, no model needed. N chat
// sessions share a system prompt; each runs turns (a user message prefilled, a reply decoded
// token by token), some fork to regenerate a reply, some end and are replaced; when the budget
// runs out the least recently served session is preempted and recomputed later, as a server
// would. Prints the residency report, prefix reuse, evictions and the cost of cache operations.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json_text.h"
#include "base/rng.h"
#include "base/table.h"
#include "base/timer.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"
#include "kv_flags.h"
#include "kvpack/cache.h"

namespace kvpack::cli {
namespace {

struct Options {
  int sessions = 16;
  int prefix = 2048;
  std::string budget = "1GiB";
  int layers = 32, kv_heads = 8, head_dim = 128;  // Llama-3.1-8B's KV shape
  int page_tokens = 32;
  int window = 0;
  int turns = 4;
  int user_tokens = 64, gen_tokens = 128;
  double fork_rate = 0.1, end_rate = 0.1;
  uint64_t seed = 1;
  bool json = false;
  KvFlags kv;
};

struct Session {
  bool live = false;
  cache::SeqId seq = 0;
  std::vector<int32_t> tokens;  // history, kept to recompute after preemption
  uint64_t last_served = 0;
};

struct Stats {
  uint64_t turns = 0, forks = 0, ended = 0, preempted = 0, recomputed_tokens = 0;
  double seconds = 0;
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
  void regenerate(size_t i, int gen) {
    Session& s = sessions_[i];
    const cache::SeqId parent = s.seq;
    s.seq = cache_.fork(parent);
    cache_.truncate(s.seq, gen);
    s.tokens.resize(s.tokens.size() - static_cast<size_t>(gen));
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

// Operation costs measured beside the run: page encoding with the run's codecs and with f16,
// and the machine's copy bandwidth, so the append rate can be read against both.
struct Costs {
  double encode_us = 0, encode_f16_us = 0;  // one page, all layers, K and V
  double decode_us = 0, decode_f16_us = 0;  // append of one decoded token, all layers
  double copy_gbs = 0;
};

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
  c.salt = fmt::format("bench-model {}x{}x{}", o.layers, o.kv_heads, o.head_dim);
  return c;
}

// What compact() and shrink() did once half of the live sessions had ended.
struct AfterRun {
  int live = 0, ended = 0;
  uint64_t moved = 0, released = 0;
};

struct Report {
  const Options& o;
  const format::KVPolicy& policy;
  Simulator& sim;
  const Stats& st;
  const cache::Residency& r;
  int copies;
  AfterRun after;
  Costs costs;

  double append_s() const { return r.counters.append_ns * 1e-9; }
  double rows_per_s() const { return append_s() > 0 ? r.counters.appended_tokens / append_s() : 0; }
  double token_append_us() const {
    const double tokens = static_cast<double>(r.counters.appended_tokens) / o.layers;
    return tokens > 0 ? append_s() * 1e6 / tokens : 0;
  }
  double input_gbs() const {  // f32 K and V rows handed to append
    const double row = 2.0 * o.kv_heads * o.head_dim * sizeof(float);
    return rows_per_s() * row / 1e9;
  }
  double decode_input_gbs() const {  // f32 K and V rows of one token, all layers, per second
    return 2.0 * o.layers * o.kv_heads * o.head_dim * sizeof(float) / costs.decode_us / 1e3;
  }
  double run_encode_us() const {  // one page, all layers
    const double pages = static_cast<double>(r.counters.encoded_pages) / o.layers;
    return pages > 0 ? r.counters.encode_ns * 1e-3 / pages : 0;
  }
  uint64_t prompt_pages() const { return sim.prompt().size() / o.page_tokens; }
};

void print_json(const Report& x) {
  using nlohmann::ordered_json;
  ordered_json j = {
      {"config",
       {{"sessions", x.o.sessions},
        {"prefix_tokens", x.o.prefix},
        {"budget_bytes", parse_bytes(x.o.budget)},
        {"kv", x.policy.to_string()},
        {"layers", x.o.layers},
        {"kv_heads", x.o.kv_heads},
        {"head_dim", x.o.head_dim},
        {"page_tokens", x.o.page_tokens},
        {"hp_window", x.o.window},
        {"turns", x.o.turns},
        {"user_tokens", x.o.user_tokens},
        {"gen_tokens", x.o.gen_tokens},
        {"fork_rate", x.o.fork_rate},
        {"end_rate", x.o.end_rate},
        {"seed", x.o.seed}}},
      {"workload",
       {{"turns", x.st.turns},
        {"forks", x.st.forks},
        {"ended", x.st.ended},
        {"preempted", x.st.preempted},
        {"recomputed_tokens", x.st.recomputed_tokens},
        {"seconds", x.st.seconds}}},
      {"residency", ordered_json::parse(x.r.to_json())},
      {"prompt", {{"pages", x.prompt_pages()}, {"live_copies", x.copies}}},
      {"after_run",
       {{"sessions_ended", x.after.ended},
        {"compaction_pages_moved", x.after.moved},
        {"shrink_bytes_released", x.after.released}}},
      {"costs",
       {{"append_us_per_token_all_layers", x.token_append_us()},
        {"append_layer_rows_per_s", x.rows_per_s()},
        {"append_input_gbs", x.input_gbs()},
        {"copy_bandwidth_gbs", x.costs.copy_gbs},
        {"decode_append_us_per_token", x.costs.decode_us},
        {"decode_append_us_per_token_f16", x.costs.decode_f16_us},
        {"decode_append_input_gbs", x.decode_input_gbs()},
        {"encode_us_per_page_in_run", x.run_encode_us()},
        {"encode_us_per_page", x.costs.encode_us},
        {"encode_us_per_page_f16", x.costs.encode_f16_us}}},
  };
  std::printf("%s\n", json_text(j).c_str());
}

void print_text(const Report& x) {
  const auto& o = x.o;
  const auto& r = x.r;
  std::printf("kvpack bench cache: %d sessions sharing a %d-token prompt, --kv %s, budget %s\n",
              o.sessions, o.prefix, x.policy.to_string().c_str(), o.budget.c_str());
  std::printf("model: %d layers x %d KV heads x head dim %d; %llu pages of %s\n", o.layers,
              o.kv_heads, o.head_dim, static_cast<unsigned long long>(r.reserved.pages),
              format_bytes(static_cast<double>(r.page_bytes)).c_str());
  std::printf(
      "workload: %llu turns (%d per session, user ~%d, reply ~%d tokens), %llu forks, %llu "
      "ended, %llu preempted (%llu tokens recomputed), %.2f s\n\n",
      static_cast<unsigned long long>(x.st.turns), o.turns, o.user_tokens, o.gen_tokens,
      static_cast<unsigned long long>(x.st.forks), static_cast<unsigned long long>(x.st.ended),
      static_cast<unsigned long long>(x.st.preempted),
      static_cast<unsigned long long>(x.st.recomputed_tokens), x.st.seconds);
  std::printf("%s\n", r.to_table().c_str());
  std::printf("system prompt: %llu pages (%s) held by %zu live sessions as %d cop%s\n",
              static_cast<unsigned long long>(x.prompt_pages()),
              format_bytes(static_cast<double>(x.prompt_pages() * r.page_bytes)).c_str(),
              static_cast<size_t>(x.after.live), x.copies, x.copies == 1 ? "y" : "ies");
  std::printf(
      "after ending %d of the %d live sessions: compact() moved %llu pages, shrink() released "
      "%s\n\n",
      x.after.ended, x.after.live, static_cast<unsigned long long>(x.after.moved),
      format_bytes(static_cast<double>(x.after.released)).c_str());
  Table t({"operation", "cost", "vs f16", "vs bandwidth"});
  t.align_left(0);
  const double bw = x.costs.copy_gbs;
  t.add_row({"decode append, one token, all layers", fmt::format("{:.1f} us", x.costs.decode_us),
             fmt::format("{:.2f}x", x.costs.decode_us / x.costs.decode_f16_us),
             fmt::format("{:.2f} GB/s f32 in: {:.1f}% of {:.1f} GB/s copy", x.decode_input_gbs(),
                         100 * x.decode_input_gbs() / bw, bw)});
  t.add_row({"encode one page, all layers", fmt::format("{:.1f} us", x.costs.encode_us),
             fmt::format("{:.2f}x", x.costs.encode_us / x.costs.encode_f16_us), ""});
  t.add_separator();
  t.add_row({"in the run: append, one token, all layers",
             fmt::format("{:.1f} us", x.token_append_us()), "",
             fmt::format("{:.2f} GB/s f32 in: {:.1f}%", x.input_gbs(), 100 * x.input_gbs() / bw)});
  t.add_row(
      {"in the run: layer rows appended", fmt::format("{:.3g} M/s", x.rows_per_s() / 1e6), "", ""});
  t.add_row({"in the run: encode one page (+ first-touch faults)",
             fmt::format("{:.1f} us", x.run_encode_us()), "", ""});
  std::printf("operation costs (cache only; K/V rows are not computed)\n%s", t.to_text().c_str());
}

void print_report(const Options& o, const format::KVPolicy& policy, Simulator& sim, const Stats& st,
                  const cache::Residency& r, int copies, const AfterRun& after,
                  const Costs& costs) {
  const Report x{o, policy, sim, st, r, copies, after, costs};
  if (o.json) {
    print_json(x);
  } else {
    print_text(x);
  }
}

// One sequence decoding 1024 tokens one at a time into a small cache whose pages were touched
// by a first pass: the steady cost of append (staging, finite check, encoding) per token.
double time_decode(const Options& o, const format::KVPolicy& policy) {
  cache::CacheConfig c = make_config(o, policy);
  c.budget_bytes = 0;
  c.n_pages = 33;
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

void run_bench_cache(const Options& o) {
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
  print_report(o, policy, sim, st, r, copies, {live, ended, moved, released}, costs);
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
