// kvpack: one binary, one subcommand per file (see commands.h).
#include <cstdio>

#include "base/error.h"
#include "base/simd_target.h"
#include "commands.h"
#include "kv_flags.h"

int main(int argc, char** argv) {
  CLI::App app{
      "kvpack: a long-context LLM inference engine built around a compressed, paged KV cache"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvpack 0.1.0");
  // One SIMD target for every kernel (src/base/simd_target.h); KVPACK_SIMD sets it too. Given to
  // any subcommand, it reaches this option through fallthrough.
  app.fallthrough();
  app.add_option_function<std::string>(
         "--simd", [](const std::string& name) { kvpack::force_simd_target(name); },
         "Force the SIMD target of every kernel: best, avx512-vnni, avx512, avx2, avx2-novnni, "
         "sse4, neon, scalar (default: best; env KVPACK_SIMD)")
      ->trigger_on_parse();
  kvpack::cli::add_formats_command(app);
  kvpack::cli::add_bench_command(app);
  kvpack::cli::add_plan_command(app);
  kvpack::cli::add_inspect_command(app);
  kvpack::cli::add_run_command(app);
  kvpack::cli::add_dev_command(app);
  kvpack::cli::add_eval_command(app);
  kvpack::cli::add_demo_command(app);
  kvpack::cli::add_serve_command(app);
  // llama.cpp's -ctk / -ctv become --cache-type-k / -v before CLI11 sees them.
  const std::vector<std::string> args = kvpack::cli::rewrite_llama_flags(argc, argv);
  std::vector<const char*> ptrs;
  for (const auto& a : args) ptrs.push_back(a.c_str());
  try {
    kvpack::apply_simd_env();
    app.parse(static_cast<int>(ptrs.size()), ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kvpack::Error& e) {
    std::fprintf(stderr, "kvpack: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kvpack: error: out of memory\n");
    return 1;
  }
  return 0;
}
