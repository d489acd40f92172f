// `kvpack bench attention`: one-layer decode attention per K/V pair and context, against the
// read bandwidth measured in the same process, the f16 pair of the same run, a
// dequantize-to-f16 baseline and llama.cpp's published figures (FACTS.md section 4).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/bench/measure.h"
#include "base/error.h"
#include "base/json_text.h"
#include "base/simd_target.h"
#include "base/table.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"

namespace kvpack::cli {
namespace {

using attention::bench::MeasureConfig;
using attention::bench::Measurement;
using format::FormatId;

// Bytes the bandwidth probe reads: far beyond the last-level cache.
constexpr size_t kProbeBytes = size_t{512} << 20;

struct Options {
  std::vector<std::string> contexts{"4k", "16k", "32k", "64k", "128k"};
  std::vector<std::string> kv;  // one k=FORMAT,v=FORMAT policy per pair
  int threads = 0;
  int heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  int page_tokens = 32;
  std::string working_set = "1GiB";
  std::string max_memory = "8GiB";
  double min_time = 0.5;
  bool no_baseline = false;
  bool codec_ops = false;
  bool shuffle_pages = false;
  bool json = false;
};

// llama.cpp CPU flash attention, 2 threads, 32/8 heads, dim 128 (FACTS.md section 4), in ms.
std::optional<double> llama_cpp_ms(FormatId k, FormatId v, int64_t context) {
  struct Row {
    FormatId k, v;
    double ms[3];  // 4096, 16384, 32768
  };
  static const Row rows[] = {{FormatId::f16, FormatId::f16, {1.25, 4.60, 9.25}},
                             {FormatId::q8, FormatId::q8, {2.34, 8.87, 17.5}},
                             {FormatId::q4, FormatId::q4, {4.46, 17.5, 37.0}},
                             {FormatId::q4, FormatId::q8, {2.60, 9.90, 20.1}}};
  const int col = context == 4096 ? 0 : context == 16384 ? 1 : context == 32768 ? 2 : -1;
  if (col < 0) return std::nullopt;
  for (const Row& r : rows) {
    if (r.k == k && r.v == v) return r.ms[col];
  }
  return std::nullopt;
}

std::vector<std::pair<FormatId, FormatId>> pairs_from(const std::vector<std::string>& specs) {
  std::vector<std::pair<FormatId, FormatId>> out;
  if (specs.empty()) {
    for (const auto& k : format::all_formats()) {
      if (!k.supports(format::Role::K)) continue;
      for (const auto& v : format::all_formats()) {
        if (v.supports(format::Role::V)) out.emplace_back(k.id, v.id);
      }
    }
    return out;
  }
  for (const auto& spec : specs) {
    const auto policy = format::KVPolicy::parse(spec);
    if (!policy.uniform()) fail("bench attention: --kv '{}' must be one K and one V format", spec);
    out.emplace_back(policy.base().k, policy.base().v);
  }
  return out;
}

// One measured pair with the figures derived from it and the run's f16 pair.
struct Row {
  Measurement m;
  const Measurement* f16 = nullptr;
  std::optional<double> llama_ms;

  double gbps() const { return m.bytes_per_call / m.us_per_call * 1e-3; }
  double pct() const { return 100.0 * m.bytes_per_call / (m.us_per_call * 1e-6) / m.bandwidth; }
  double cpu_pct() const {
    return 100.0 * m.bytes_per_call / (m.cpu_us_per_call * 1e-6) / m.cpu_bandwidth;
  }
  double cpu_time_vs_f16() const { return m.cpu_us_per_call / f16->cpu_us_per_call; }
  double bytes_vs_f16() const { return double(m.bytes_per_call) / f16->bytes_per_call; }
  double time_vs_f16() const { return m.us_per_call / f16->us_per_call; }
};

nlohmann::ordered_json to_json(const Row& r) {
  nlohmann::ordered_json j = {
      {"k", format::info(r.m.k).name},
      {"v", format::info(r.m.v).name},
      {"context", r.m.context},
      {"k_kernel", r.m.k_kernel},
      {"v_kernel", r.m.v_kernel},
      {"layers", r.m.layers},
      {"us_per_call", r.m.us_per_call},
      {"us_min", r.m.us_min},
      {"bytes_per_call", r.m.bytes_per_call},
      {"gb_per_s", r.gbps()},
      {"bandwidth_gb_per_s", r.m.bandwidth * 1e-9},
      {"pct_of_bandwidth", r.pct()},
      {"bytes_vs_f16", r.bytes_vs_f16()},
      {"time_vs_f16", r.time_vs_f16()},
      {"target_time_vs_f16", 1.3 * r.bytes_vs_f16()},
      {"cpu_us_per_call", r.m.cpu_us_per_call},
      {"cpu_bandwidth_gb_per_s", r.m.cpu_bandwidth * 1e-9},
      {"cpu_pct_of_bandwidth", r.cpu_pct()},
      {"cpu_time_vs_f16", r.cpu_time_vs_f16()},
  };
  if (r.m.baseline_us > 0) {
    j["dequant_baseline_us"] = r.m.baseline_us;
    j["speedup_vs_dequant_baseline"] = r.m.baseline_us / r.m.us_per_call;
  }
  if (r.llama_ms) {
    j["llama_cpp_us"] = *r.llama_ms * 1e3;
    j["speedup_vs_llama_cpp"] = *r.llama_ms * 1e3 / r.m.us_per_call;
  }
  return j;
}

std::vector<std::string> table_cells(const Row& r) {
  const bool ref = r.m.k == FormatId::f16 && r.m.v == FormatId::f16;
  return {std::string(format::info(r.m.k).name),
          std::string(format::info(r.m.v).name),
          format_count(r.m.context),
          fmt::format("{:.0f}", r.m.us_per_call),
          fmt::format("{:.1f}", r.m.bytes_per_call / 1048576.0),
          fmt::format("{:.1f}", r.gbps()),
          fmt::format("{:.0f}%", r.pct()),
          fmt::format("{:.2f}", r.bytes_vs_f16()),
          fmt::format("{:.2f}", r.time_vs_f16()),
          ref ? "" : fmt::format("{:.2f}", 1.3 * r.bytes_vs_f16()),
          fmt::format("{:.0f}", r.m.cpu_us_per_call),
          fmt::format("{:.0f}%", r.cpu_pct()),
          fmt::format("{:.2f}", r.cpu_time_vs_f16()),
          r.m.baseline_us > 0 ? fmt::format("{:.1f}x", r.m.baseline_us / r.m.us_per_call) : "-",
          r.llama_ms ? fmt::format("{:.1f}x", *r.llama_ms * 1e3 / r.m.us_per_call) : "-",
          r.m.k_kernel + " / " + r.m.v_kernel};
}

void print_table(const std::vector<Row>& rows, const MeasureConfig& c, int threads) {
  Table t({"K", "V", "ctx", "us/call", "MiB/call", "GB/s", "%bw", "bytes/f16", "time/f16", "target",
           "cpu us", "cpu %bw", "cpu t/f16", "vs dequant", "vs llama.cpp", "kernels K / V"});
  t.align_left(0).align_left(1).align_left(15);
  for (const Row& r : rows) t.add_row(table_cells(r));
  std::printf("%s", t.to_text().c_str());
  std::printf(
      "\nSIMD target %s. %d query heads, %d KV heads, head dim %d, %d-token pages (%s ids), %d "
      "threads; %%bw: of the read "
      "bandwidth measured beside each row; target: time/f16 must be <= 1.3 x bytes/f16; vs "
      "dequant: speedup over dequantizing to an f16 copy and attending over it; vs llama.cpp: "
      "over FACTS.md section 4; cpu columns: the same in process CPU time / threads against the "
      "probe's CPU-time rate (what an idle machine would show; use them when the load average "
      "exceeds the thread count).\n",
      active_simd_target().c_str(), c.shape.n_q_heads, c.shape.n_kv_heads, c.shape.head_dim,
      c.shape.page_tokens, c.shuffle_pages ? "shuffled" : "ascending", threads);
}

size_t memory_needed(FormatId k, FormatId v, const MeasureConfig& c) {
  const size_t layer = attention::bench::layer_bytes(k, v, c.shape, c.context);
  const size_t f16 =
      attention::bench::layer_bytes(FormatId::f16, FormatId::f16, c.shape, c.context);
  return std::max(c.working_set, 2 * layer) + layer + (c.baseline ? f16 : 0) + kProbeBytes;
}

void run(const Options& o) {
  const std::vector<int64_t> contexts = parse_contexts(o.contexts, "--context");
  ThreadPool pool(o.threads);
  MeasureConfig c;
  c.shape = {o.heads, o.kv_heads, o.head_dim, o.page_tokens};
  c.working_set = parse_memory_bytes(o.working_set, "--working-set");
  c.min_seconds = o.min_time;
  c.baseline = !o.no_baseline;
  c.codec_ops = o.codec_ops;
  c.shuffle_pages = o.shuffle_pages;
  const uint64_t max_memory = parse_memory_bytes(o.max_memory, "--max-memory");
  auto pairs = pairs_from(o.kv);
  // Every ratio is to f16/f16 of the same run: report that row too.
  if (std::find(pairs.begin(), pairs.end(), std::pair{FormatId::f16, FormatId::f16}) ==
      pairs.end()) {
    pairs.insert(pairs.begin(), {FormatId::f16, FormatId::f16});
  }
  const ReadProbe probe(kProbeBytes);
  std::vector<std::unique_ptr<Measurement>> f16s;
  std::vector<Row> rows;
  for (int64_t ctx : contexts) {
    c.context = ctx;
    if (memory_needed(FormatId::f16, FormatId::f16, c) > max_memory) {
      std::fprintf(stderr, "kvpack: skipping context %s: needs more than --max-memory %s\n",
                   format_count(ctx).c_str(), o.max_memory.c_str());
      continue;
    }
    f16s.push_back(std::make_unique<Measurement>(
        attention::bench::measure_pair(FormatId::f16, FormatId::f16, c, pool, probe)));
    for (auto [k, v] : pairs) {
      Row r;
      r.m = k == FormatId::f16 && v == FormatId::f16
                ? *f16s.back()
                : attention::bench::measure_pair(k, v, c, pool, probe);
      r.f16 = f16s.back().get();
      r.llama_ms = llama_cpp_ms(k, v, ctx);
      const bool first_context = ctx == parse_counts(o.contexts)[0];
      for (const auto& [role, kernel] :
           {std::pair{"keys", &r.m.k_kernel}, {"values", &r.m.v_kernel}}) {
        if (*kernel != "codec ops" || o.codec_ops || !first_context) continue;
        std::fprintf(stderr,
                     "kvpack: warning: k=%s,v=%s: no SIMD kernel reads %s at head dim %d and "
                     "%d-token pages; measuring the codec operations\n",
                     format::info(k).name.data(), format::info(v).name.data(), role, o.head_dim,
                     o.page_tokens);
      }
      rows.push_back(r);
      if (!o.json) std::fprintf(stderr, ".");
    }
  }
  if (!o.json) std::fprintf(stderr, "\n");
  if (o.json) {
    nlohmann::ordered_json out = {{"shape",
                                   {{"q_heads", c.shape.n_q_heads},
                                    {"kv_heads", c.shape.n_kv_heads},
                                    {"head_dim", c.shape.head_dim},
                                    {"page_tokens", c.shape.page_tokens}}},
                                  {"threads", pool.size()},
                                  {"simd_target", active_simd_target()},
                                  {"working_set_bytes", c.working_set},
                                  {"page_order", c.shuffle_pages ? "shuffled" : "ascending"},
                                  {"results", nlohmann::ordered_json::array()}};
    for (const Row& r : rows) out["results"].push_back(to_json(r));
    std::printf("%s\n", json_text(out).c_str());
  } else {
    print_table(rows, c, pool.size());
  }
}

}  // namespace

void add_bench_attention_command(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand(
      "attention",
      "One-layer decode attention per K/V pair and context, against measured read "
      "bandwidth, f16, a dequantize-to-f16 baseline and llama.cpp");
  cmd->add_option("--context", o->contexts, "Context lengths, e.g. 4k,32k (repeatable)")
      ->capture_default_str();
  cmd->add_option("--kv", o->kv,
                  "K/V pair k=FORMAT,v=FORMAT (repeatable; default: every K x every V format)")
      ->type_name("PAIR");
  add_threads_flag(cmd, o->threads);
  cmd->add_option("--heads", o->heads, "Query heads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--head-dim", o->head_dim, "Head dim (K and V)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--page-tokens", o->page_tokens, "Tokens per page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_option("--working-set", o->working_set,
                  "Bytes of pages the calls cycle through (more layers than the LLC holds)")
      ->capture_default_str();
  cmd->add_option("--max-memory", o->max_memory, "Skip contexts that would need more")
      ->capture_default_str();
  cmd->add_option("--min-time", o->min_time, "Seconds per measurement")
      ->capture_default_str()
      ->check(finite_range(0, 3600));
  cmd->add_flag("--no-baseline", o->no_baseline, "Skip the (slow) dequantize-to-f16 baseline");
  cmd->add_flag("--codec-ops", o->codec_ops,
                "Read every format through its codec's generic role operations");
  cmd->add_flag("--shuffle-pages", o->shuffle_pages,
                "Scatter page ids as a fragmented pool would (default: ascending, as the cache "
                "allocates one sequence on a fresh or compacted pool)");
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
