// `kvpack bench decode`: whole-model decode speed at given cache depths per K/V policy, as
// llama-bench -d/-n measures it, beside the read bandwidth measured in the same run and the f16
// policy of the same run.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json_text.h"
#include "base/table.h"
#include "base/terminal.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"
#include "kv_flags.h"
#include "model/bench/decode_bench.h"

namespace kvpack::cli {
namespace {

using model::bench::DecodeResult;

// Bytes the bandwidth probe reads: far beyond the last-level cache.
constexpr size_t kProbeBytes = size_t{512} << 20;

struct Options {
  std::string model;
  std::vector<std::string> depths{"0"};
  int n_decode = 32;
  int repetitions = 3;
  int threads = 0;
  int page_tokens = 32;
  std::string fill = "kv";
  KvFlags kv;
  bool json = false;
};

std::vector<int64_t> parse_depths(const std::vector<std::string>& texts) {
  std::vector<int64_t> out = parse_contexts(texts, "-d", /*min=*/0);
  if (out.empty()) fail("bench decode: -d needs at least one depth");
  return out;
}

// One result with the figures derived from it and the f16/f16 result at the same depth.
struct Row {
  DecodeResult r;
  const DecodeResult* f16 = nullptr;

  double ms() const { return 1e3 / r.mean_tokens_per_s; }
  double gbps() const { return r.bytes_per_step * r.mean_tokens_per_s * 1e-9; }
  double pct() const { return 100.0 * r.bytes_per_step * r.mean_tokens_per_s / r.bandwidth; }
  double limit() const { return r.bandwidth / r.bytes_per_step; }  // tokens/s at the bandwidth
  double speed_vs_f16() const { return r.mean_tokens_per_s / f16->mean_tokens_per_s; }
  double cpu_speed_vs_f16() const { return r.cpu_tokens_per_s / f16->cpu_tokens_per_s; }
  double kv_vs_f16() const {
    return f16->kv_bytes == 0 ? 1.0 : static_cast<double>(r.kv_bytes) / f16->kv_bytes;
  }
};

nlohmann::ordered_json to_json(const Row& w) {
  const format::LayerFormats f = w.r.policy.base();
  return {{"policy", w.r.policy.to_string()},
          {"k", format::info(f.k).name},
          {"v", format::info(f.v).name},
          {"depth", w.r.depth},
          {"tokens_per_s", w.r.mean_tokens_per_s},
          {"stddev_tokens_per_s", w.r.stddev_tokens_per_s},
          {"samples", w.r.tokens_per_s},
          {"ms_per_token", w.ms()},
          {"kv_bytes", w.r.kv_bytes},
          {"weight_bytes", w.r.weight_bytes},
          {"bytes_per_step", w.r.bytes_per_step},
          {"gb_per_s", w.gbps()},
          {"bandwidth_gb_per_s", w.r.bandwidth * 1e-9},
          {"pct_of_bandwidth", w.pct()},
          {"bandwidth_limit_tokens_per_s", w.limit()},
          {"speed_vs_f16", w.speed_vs_f16()},
          {"cpu_tokens_per_s", w.r.cpu_tokens_per_s},
          {"cpu_speed_vs_f16", w.cpu_speed_vs_f16()},
          {"kernels", w.r.kernels.layers},
          {"kernel_fallbacks", w.r.kernels.fallbacks},
          {"kv_bytes_vs_f16", w.kv_vs_f16()},
          {"fill_seconds", w.r.fill_seconds}};
}

// The SIMD target and, per policy, which kernels read its layers (once per policy).
void print_kernels(const std::vector<Row>& rows) {
  if (rows.empty()) return;
  std::printf("\nSIMD target %s. Kernels per policy:\n", rows[0].r.kernels.target.c_str());
  std::string last;
  for (const Row& w : rows) {
    const std::string policy = w.r.policy.to_string();
    if (policy == last) continue;
    last = policy;
    for (const std::string& l : w.r.kernels.layers)
      std::printf("  %s %s\n", policy.c_str(), l.c_str());
  }
}

// One warning per layer and role that no SIMD kernel serves (stderr: the table stays clean).
void warn_fallbacks(const std::vector<Row>& rows) {
  std::string last;
  for (const Row& w : rows) {
    const std::string policy = w.r.policy.to_string();
    if (policy == last) continue;
    last = policy;
    for (const std::string& f : w.r.kernels.fallbacks) {
      std::fprintf(stderr, "kvpack: warning: %s: %s\n", policy.c_str(), f.c_str());
    }
  }
}

void print_table(const std::vector<Row>& rows, const model::Model& m, const Options& o,
                 int threads) {
  const bool prefill = o.fill == "prefill";
  std::vector<std::string> head = {
      "K/V",  "depth", "tok/s",       "+-",        "ms/tok",    "KV MiB",        "MiB/step",
      "GB/s", "%bw",   "limit tok/s", "speed/f16", "cpu tok/s", "cpu speed/f16", "KV/f16"};
  if (prefill) head.push_back("prefill tok/s");
  Table t(head);
  t.align_left(0);
  for (const Row& w : rows) {
    const format::LayerFormats f = w.r.policy.base();
    std::vector<std::string> cells = {
        w.r.policy.uniform() ? fmt::format("{}/{}", format::info(f.k).name, format::info(f.v).name)
                             : w.r.policy.to_string(),
        std::to_string(w.r.depth),
        fmt::format("{:.1f}", w.r.mean_tokens_per_s),
        fmt::format("{:.1f}", w.r.stddev_tokens_per_s),
        fmt::format("{:.2f}", w.ms()),
        fmt::format("{:.1f}", w.r.kv_bytes / 1048576.0),
        fmt::format("{:.1f}", w.r.bytes_per_step / 1048576.0),
        fmt::format("{:.1f}", w.gbps()),
        fmt::format("{:.0f}%", w.pct()),
        fmt::format("{:.0f}", w.limit()),
        fmt::format("{:.2f}", w.speed_vs_f16()),
        fmt::format("{:.1f}", w.r.cpu_tokens_per_s),
        fmt::format("{:.2f}", w.cpu_speed_vs_f16()),
        fmt::format("{:.2f}", w.kv_vs_f16())};
    if (prefill) {
      cells.push_back(w.r.depth > 0 ? fmt::format("{:.1f}", w.r.depth / w.r.fill_seconds) : "-");
    }
    t.add_row(std::move(cells));
  }
  const model::ModelSpec& hp = m.spec();
  std::printf("%s: %d layers, %d query / %d KV heads of dim %d, %s of weights per step\n",
              terminal_safe(hp.name).c_str(), hp.n_layers(), hp.n_heads(), hp.n_kv_heads(),
              hp.head_dim_k, format_bytes(static_cast<double>(m.weights().step_bytes())).c_str());
  std::printf("%s", t.to_text().c_str());
  std::printf(
      "\n%d decode steps x %d repetitions per row after filling to the depth (%s), %d threads, "
      "%d-token pages. MiB/step: weights + K/V one step reads; %%bw and limit: against the read "
      "bandwidth measured beside each row; speed/f16 and KV/f16: against f16/f16 at the same "
      "depth; cpu: the same in process CPU time / threads (use it when the load average exceeds "
      "the thread count).\n",
      o.n_decode, o.repetitions, o.fill == "kv" ? "K/V appended directly" : "the model's prefill",
      threads, o.page_tokens);
  print_kernels(rows);
}

void run(const Options& o) {
  const auto model = model::Model::load(o.model);  // a tokenizer is not needed
  model::bench::DecodeBenchConfig c;
  c.depths = parse_depths(o.depths);
  c.n_decode = o.n_decode;
  c.repetitions = o.repetitions;
  c.page_tokens = o.page_tokens;
  if (o.fill != "kv" && o.fill != "prefill") {
    fail("bench decode: --fill '{}' must be kv or prefill", o.fill);
  }
  c.fill = o.fill == "kv" ? model::bench::Fill::kv : model::bench::Fill::prefill;
  // f16/f16 runs first: every other policy is reported against it.
  const format::KVPolicy f16;
  std::vector<format::KVPolicy> policies = o.kv.policies({});
  policies.erase(std::remove(policies.begin(), policies.end(), f16), policies.end());
  policies.insert(policies.begin(), f16);

  ThreadPool pool(o.threads);
  const ReadProbe probe(kProbeBytes);
  std::vector<Row> rows;
  std::vector<DecodeResult> reference;
  for (const auto& policy : policies) {
    for (DecodeResult& r : model::bench::bench_decode(*model, policy, c, pool, probe)) {
      if (!o.json) std::fprintf(stderr, ".");
      if (policy == f16) reference.push_back(r);
      rows.push_back({std::move(r), nullptr});
    }
  }
  if (!o.json) std::fprintf(stderr, "\n");
  for (size_t i = 0; i < rows.size(); ++i) rows[i].f16 = &reference[i % reference.size()];
  warn_fallbacks(rows);
  if (o.json) {
    const model::ModelSpec& hp = model->spec();
    nlohmann::ordered_json out = {{"model",
                                   {{"path", o.model},
                                    {"name", hp.name},
                                    {"layers", hp.n_layers()},
                                    {"q_heads", hp.n_heads()},
                                    {"kv_heads", hp.n_kv_heads()},
                                    {"head_dim", hp.head_dim_k},
                                    {"weight_bytes_per_step", model->weights().step_bytes()}}},
                                  {"threads", pool.size()},
                                  {"simd_target", rows.empty() ? "" : rows[0].r.kernels.target},
                                  {"n_decode", o.n_decode},
                                  {"repetitions", o.repetitions},
                                  {"page_tokens", o.page_tokens},
                                  {"fill", o.fill},
                                  {"results", nlohmann::ordered_json::array()}};
    for (const Row& w : rows) out["results"].push_back(to_json(w));
    std::printf("%s\n", json_text(out).c_str());
  } else {
    print_table(rows, *model, o, pool.size());
  }
}

}  // namespace

void add_bench_decode_command(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand(
      "decode",
      "Whole-model decode tokens/s at cache depths per K/V policy (llama-bench -d/-n), against "
      "measured read bandwidth and f16");
  cmd->add_option("-m,--model", o->model, "GGUF model file (no tokenizer needed)")->required();
  cmd->add_option("-d,--depth", o->depths, "Cache depths before the timed steps, e.g. 0,4k,16k")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_decode, "Timed decode steps per repetition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-r,--repetitions", o->repetitions, "Repetitions per depth and policy")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  add_threads_flag(cmd, o->threads);
  cmd->add_option("--page-tokens", o->page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_option("--fill", o->fill,
                  "How the cache reaches the depth: kv (append K/V directly) or prefill (run the "
                  "model over arbitrary ids)")
      ->capture_default_str();
  o->kv.add_to(cmd, /*repeatable=*/true, "k=f16,v=f16 (always run first, as the reference)");
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
