// `kvpack bench matmul`: per weight type, decode (matvec over a matrix larger than the caches) in
// GB/s of weights against the read bandwidth measured beside it, and prefill (a batch of tokens)
// in GFLOP/s against the peak of the kernel's instruction measured in the same run, with
// CPU-time versions of both for shared machines.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json_text.h"
#include "base/simd_target.h"
#include "base/table.h"
#include "base/units.h"
#include "commands.h"
#include "model/bench/matmul_bench.h"
#include "model/matmul_int.h"
#include "model/quant_ref.h"

namespace kvpack::cli {
namespace {

using model::bench::MatmulBenchResult;

struct Options {
  std::vector<std::string> types;
  int64_t mib = 1024;
  int64_t cols = 4096;
  int64_t prefill_rows = 4096;
  int tokens = 512;
  int repetitions = 5;
  int threads = 0;
  bool json = false;
};

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string type_name(model::GgmlType t) {
  return model::ggml_type_name(static_cast<uint32_t>(t));
}

std::vector<model::GgmlType> parse_types(const std::vector<std::string>& names) {
  std::vector<model::GgmlType> out;
  for (const model::WeightTypeTraits& tr : model::weight_types()) {
    if (names.empty()) out.push_back(tr.type);
  }
  for (const std::string& n : names) {
    const model::WeightTypeTraits* hit = nullptr;
    for (const model::WeightTypeTraits& tr : model::weight_types()) {
      if (lower(type_name(tr.type)) == lower(n)) hit = &tr;
    }
    if (hit == nullptr) {
      fail("bench matmul: unknown weight type '{}' (expected one of {})", n,
           lower(model::supported_weight_type_names()));
    }
    out.push_back(hit->type);
  }
  return out;
}

// Derived figures of one result.
struct Row {
  MatmulBenchResult r;
  double bits() const { return 8.0 * r.decode_bytes / (static_cast<double>(r.decode_rows) * cols); }
  int64_t cols = 0;
  double decode_gbps(bool cpu) const {
    return r.decode_bytes / (cpu ? r.decode_seconds.cpu : r.decode_seconds.wall) * 1e-9;
  }
  double decode_pct(bool cpu) const {
    return 100.0 * decode_gbps(cpu) * 1e9 / (cpu ? r.bandwidth.cpu : r.bandwidth.wall);
  }
  double gflops(bool cpu) const {
    return r.prefill_flops / (cpu ? r.prefill_seconds.cpu : r.prefill_seconds.wall) * 1e-9;
  }
  double peak_pct(bool cpu) const {
    const double peak = cpu ? r.peak.cpu : r.peak.wall;
    return peak > 0 ? 100.0 * gflops(cpu) * 1e9 / peak : 0.0;
  }
};

nlohmann::ordered_json to_json(const Row& w) {
  const MatmulBenchResult& r = w.r;
  return {{"type", type_name(r.type)},
          {"bits_per_weight", w.bits()},
          {"decode_rows", r.decode_rows},
          {"decode_bytes", r.decode_bytes},
          {"decode_ms", r.decode_seconds.wall * 1e3},
          {"decode_gb_per_s", w.decode_gbps(false)},
          {"bandwidth_gb_per_s", r.bandwidth.wall * 1e-9},
          {"decode_pct_of_bandwidth", w.decode_pct(false)},
          {"decode_cpu_ms", r.decode_seconds.cpu * 1e3},
          {"decode_cpu_gb_per_s", w.decode_gbps(true)},
          {"bandwidth_cpu_gb_per_s", r.bandwidth.cpu * 1e-9},
          {"decode_cpu_pct_of_bandwidth", w.decode_pct(true)},
          {"prefill_bytes", r.prefill_bytes},
          {"prefill_ms", r.prefill_seconds.wall * 1e3},
          {"prefill_gflop_per_s", w.gflops(false)},
          {"peak_kind", r.peak_kind},
          {"peak_gop_per_s", r.peak.wall * 1e-9},
          {"prefill_pct_of_peak", w.peak_pct(false)},
          {"prefill_cpu_gflop_per_s", w.gflops(true)},
          {"peak_cpu_gop_per_s", r.peak.cpu * 1e-9},
          {"prefill_cpu_pct_of_peak", w.peak_pct(true)}};
}

void print_table(const std::vector<Row>& rows, const Options& o, int threads) {
  Table t({"type", "bits/w", "decode ms", "GB/s", "%bw", "cpu GB/s", "cpu %bw", "prefill GFLOP/s",
           "%peak", "cpu GFLOP/s", "cpu %peak", "peak GOP/s", "peak of"});
  t.align_left(0);
  for (const Row& w : rows) {
    t.add_row(
        {type_name(w.r.type), fmt::format("{:.2f}", w.bits()),
         fmt::format("{:.1f}", w.r.decode_seconds.wall * 1e3),
         fmt::format("{:.1f}", w.decode_gbps(false)), fmt::format("{:.0f}%", w.decode_pct(false)),
         fmt::format("{:.1f}", w.decode_gbps(true)), fmt::format("{:.0f}%", w.decode_pct(true)),
         fmt::format("{:.1f}", w.gflops(false)), fmt::format("{:.0f}%", w.peak_pct(false)),
         fmt::format("{:.1f}", w.gflops(true)), fmt::format("{:.0f}%", w.peak_pct(true)),
         fmt::format("{:.0f}", w.r.peak.wall * 1e-9), w.r.peak_kind});
  }
  const MatmulBenchResult& first = rows.front().r;
  std::printf(
      "SIMD target %s (integer dots: %s), %d threads; read bandwidth %.1f GB/s (cpu %.1f)\n",
      active_simd_target().c_str(), model::int_dot_name(), threads, first.bandwidth.wall * 1e-9,
      first.bandwidth.cpu * 1e-9);
  std::printf("%s", t.to_text().c_str());
  std::printf(
      "\ndecode: one matvec over %s of weights (%lld inputs), best of %d; %%bw against the read "
      "probe run right after each row. prefill: %d tokens x %lld x %lld, against the peak of the "
      "kernel's instruction (int8 dot: 2 ops per multiply-add). cpu: CPU seconds / threads, the "
      "rate on an idle machine.\n",
      format_bytes(static_cast<double>(o.mib) * 1048576.0).c_str(), static_cast<long long>(o.cols),
      o.repetitions, o.tokens, static_cast<long long>(o.prefill_rows),
      static_cast<long long>(o.cols));
}

void run(const Options& o) {
  model::bench::MatmulBenchConfig c;
  c.types = parse_types(o.types);
  if (o.cols < 256 || o.cols % 256 != 0)
    fail("bench matmul: --cols {} must be a multiple of 256", o.cols);
  if (o.mib < 1) fail("bench matmul: --mib {} must be positive", o.mib);
  c.decode_bytes = static_cast<size_t>(o.mib) << 20;
  c.cols = o.cols;
  c.prefill_rows = o.prefill_rows;
  c.prefill_tokens = o.tokens;
  c.repetitions = o.repetitions;
  ThreadPool pool(o.threads);
  std::vector<Row> rows;
  for (MatmulBenchResult& r : model::bench::bench_matmul(c, pool)) rows.push_back({r, o.cols});
  if (o.json) {
    nlohmann::ordered_json out = {{"simd_target", active_simd_target()},
                                  {"int_dot", model::int_dot_name()},
                                  {"threads", pool.size()},
                                  {"cols", o.cols},
                                  {"prefill_rows", o.prefill_rows},
                                  {"prefill_tokens", o.tokens},
                                  {"repetitions", o.repetitions},
                                  {"results", nlohmann::ordered_json::array()}};
    for (const Row& w : rows) out["results"].push_back(to_json(w));
    std::printf("%s\n", json_text(out).c_str());
  } else {
    print_table(rows, o, pool.size());
  }
}

}  // namespace

void add_bench_matmul_command(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand(
      "matmul",
      "Per weight type: decode GB/s against measured read bandwidth, prefill GFLOP/s against the "
      "measured peak of the kernel's instruction");
  cmd->add_option("--types", o->types, "Weight types (comma-separated or repeated; default all)")
      ->delimiter(',');
  cmd->add_option("--mib", o->mib, "MiB of weights per decode matrix (beyond the caches)")
      ->capture_default_str();
  cmd->add_option("--cols", o->cols, "Input dim of every matrix (a multiple of 256)")
      ->capture_default_str();
  cmd->add_option("--prefill-rows", o->prefill_rows, "Output dim of the prefill matrix")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--tokens", o->tokens, "Prefill batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-r,--repetitions", o->repetitions, "Timed runs per figure (the best counts)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("-t,--threads", o->threads, "Threads (0: one per core)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->callback([o] { run(*o); });
}

}  // namespace kvpack::cli
