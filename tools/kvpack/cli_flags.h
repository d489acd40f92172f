// Flag classes every subcommand shares, checked the same way everywhere (docs/cli.md, "Bad
// input"): thread counts, seeds, floating-point values (NaN passes CLI::Range), empty values,
// and the one-line report of a flag error.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kvpack::cli {

// -t, --threads N: 0 or -1 for one per hardware thread, else 1 to kMaxThreadsPerCore x the
// hardware threads (checked_thread_count: a larger request is an error naming the limit, raised
// while the command line is parsed, before any work).
CLI::Option* add_threads_flag(CLI::App* cmd, int& threads);

// --seed N: an unsigned 64-bit seed as written in decimal (no silent clamping, no octal), or,
// where `random` is given, -1 for a seed drawn at run time (*random is set then).
CLI::Option* add_seed_flag(CLI::App* cmd, uint64_t& seed, const std::string& help,
                           bool* random = nullptr);

// A floating-point flag's value: finite and within [lo, hi].
CLI::Validator finite_range(double lo, double hi);
// A floating-point flag's value: finite.
CLI::Validator finite_number();

// An empty argument (`-c ''`, `--kv=`) is a flag error, except as the value of the options
// named in `may_be_empty` (`-p ''` is the empty prompt). Throws CLI::ValidationError.
void reject_empty_arguments(const std::vector<std::string>& args,
                            const std::vector<std::string>& may_be_empty);

// Reports a CLI11 parse error on one line and returns the exit status: 0 for --help and
// --version (printed on stdout), 2 for a flag error ("kvpack: error: <what> (see kvpack <command>
// --help)", the command found in `args`).
int report_parse_error(const CLI::App& app, const CLI::ParseError& e,
                       const std::vector<std::string>& args);

}  // namespace kvpack::cli
