// kvpack: one binary, one subcommand per file (see commands.h).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "base/simd_target.h"
#include "base/terminal.h"
#include "cli_flags.h"
#include "commands.h"
#include "kv_flags.h"

namespace {

// Flags whose value may be empty: `-p ''` starts from BOS alone. Every other empty value is a
// flag error (an empty -c or --budget must not silently mean the default).
const std::vector<std::string> kMayBeEmpty = {"-p", "--prompt"};

// stdout is buffered: a full disk or a closed pipe shows only when it is flushed. Reported
// here (e.g. `kvpack inspect x.gguf > /dev/full`), so a truncated output is never a success.
// A reader that went away (`| head`) normally ends kvpack by SIGPIPE, quietly, as any Unix
// filter; where a parent ignores SIGPIPE it ends here instead, as quietly, with status 1.
int finish_stdout() {
  errno = 0;
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return 0;
  const int err = errno;
  if (err != EPIPE) {
    kvpack::print_error(std::string("cannot write the output: ") +
                        (err != 0 ? std::strerror(err) : "write error"));
  }
  return 1;
}

}  // namespace

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
  // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported like a full disk,
  // instead of killing the process with SIGXFSZ halfway through a file.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    kvpack::apply_simd_env();
    kvpack::cli::reject_empty_arguments(args, kMayBeEmpty);
    app.parse(static_cast<int>(ptrs.size()), ptrs.data());
  } catch (const CLI::ParseError& e) {
    return kvpack::cli::report_parse_error(app, e, args);
  } catch (const kvpack::Error& e) {
    kvpack::print_error(e.message());
    return 1;
  } catch (const std::bad_alloc&) {
    kvpack::print_error("out of memory");
    return 1;
  }
  return finish_stdout();
}
