// `kvpack bench`: the parent of the benchmark subcommands (cache, attention, decode), each in
// its own file and added here.
#include "commands.h"

namespace kvpack::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand(
      "bench",
      "Benchmarks; every speed is reported beside its ratio to f16 and to the memory "
      "bandwidth measured in the same run");
  bench->require_subcommand(1);
  // Benchmarks add themselves below, one line each: add_bench_<name>_command(*bench);
  add_bench_cache_command(*bench);
  add_bench_attention_command(*bench);
  add_bench_decode_command(*bench);
  add_bench_matmul_command(*bench);
}

}  // namespace kvpack::cli
