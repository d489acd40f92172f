// kvpack: one binary, one subcommand per file (see commands.h).
#include <cstdio>

#include "base/error.h"
#include "commands.h"
#include "kv_flags.h"

int main(int argc, char** argv) {
  CLI::App app{
      "kvpack: a long-context LLM inference engine built around a compressed, paged KV cache"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvpack 0.1.0");
  kvpack::cli::add_formats_command(app);
  kvpack::cli::add_bench_command(app);
  kvpack::cli::add_plan_command(app);
  kvpack::cli::add_inspect_command(app);
  kvpack::cli::add_run_command(app);
  kvpack::cli::add_dev_command(app);
  kvpack::cli::add_eval_command(app);
  kvpack::cli::add_demo_command(app);
  // llama.cpp's -ctk / -ctv become --cache-type-k / -v before CLI11 sees them.
  const std::vector<std::string> args = kvpack::cli::rewrite_llama_flags(argc, argv);
  std::vector<const char*> ptrs;
  for (const auto& a : args) ptrs.push_back(a.c_str());
  try {
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
