#include "cli_flags.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "base/terminal.h"
#include "base/thread_pool.h"

namespace kvpack::cli {
namespace {

// "kvpack eval ppl": the subcommands named on the command line, for the --help hint.
std::string command_path(const CLI::App& app, const std::vector<std::string>& args) {
  std::string path = "kvpack";
  const CLI::App* at = &app;
  for (size_t i = 1; i < args.size(); ++i) {
    const auto subs =
        at->get_subcommands([&](const CLI::App* s) { return s->get_name() == args[i]; });
    if (subs.empty()) continue;
    const CLI::App* sub = subs.front();
    at = sub;
    path += " " + sub->get_name();
  }
  return path;
}

// A decimal integer as written: digits with an optional leading '-', nothing else.
bool parse_decimal(const std::string& text, int64_t* value) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return !text.empty() && text[0] != '+' && ec == std::errc() && ptr == end;
}

}  // namespace

CLI::Option* add_threads_flag(CLI::App* cmd, int& threads) {
  return cmd
      ->add_option(
          "-t,--threads", threads,
          fmt::format("Threads (0: one per core; at most {} per core)", kMaxThreadsPerCore))
      ->capture_default_str()
      ->each([](const std::string& text) {
        int64_t n = 0;
        // A non-number is left to CLI11's conversion error; a number is bounded here, as an
        // input error (exit 1) naming the limit, before anything runs.
        if (parse_decimal(text, &n)) checked_thread_count(n);
      });
}

CLI::Option* add_seed_flag(CLI::App* cmd, uint64_t& seed, const std::string& help, bool* random) {
  const std::string range = "0 to 18446744073709551615";
  auto* opt = cmd->add_option_function<std::string>(
      "--seed",
      [&seed, random, range](const std::string& text) {
        if (random != nullptr && text == "-1") {
          *random = true;
          return;
        }
        uint64_t v = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (text.empty() || ec != std::errc() || ptr != end) {
          throw CLI::ValidationError(
              "--seed", fmt::format("'{}' is not a seed: expected a whole number from {}{}", text,
                                    range, random != nullptr ? ", or -1 for a random one" : ""));
        }
        seed = v;
        if (random != nullptr) *random = false;
      },
      help);
  opt->type_name("N")->default_str(random != nullptr && *random ? "-1" : std::to_string(seed));
  return opt;
}

CLI::Validator finite_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!std::isfinite(v) || v < lo || v > hi) {
          return fmt::format("{} is outside {:g} to {:g}", text, lo, hi);
        }
        return "";
      },
      fmt::format("FLOAT in [{:g} - {:g}]", lo, hi));
}

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number";
        if (!std::isfinite(v)) return text + " is not a finite number";
        return "";
      },
      "FLOAT");
}

void reject_empty_arguments(const std::vector<std::string>& args,
                            const std::vector<std::string>& may_be_empty) {
  const auto allowed = [&](const std::string& flag) {
    return std::find(may_be_empty.begin(), may_be_empty.end(), flag) != may_be_empty.end();
  };
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty()) {
      const std::string prev = args[i - 1];
      if (!prev.empty() && prev[0] == '-' && prev.find('=') == std::string::npos) {
        if (allowed(prev)) continue;
        throw CLI::ValidationError(prev, "empty value (leave the flag out to get its default)");
      }
      throw CLI::ValidationError("argument " + std::to_string(i), "empty");
    }
    const size_t eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq == a.size() - 1 && !allowed(a.substr(0, eq))) {
      throw CLI::ValidationError(a.substr(0, eq),
                                 "empty value (leave the flag out to get its default)");
    }
  }
}

int report_parse_error(const CLI::App& app, const CLI::ParseError& e,
                       const std::vector<std::string>& args) {
  if (e.get_exit_code() == 0 || dynamic_cast<const CLI::CallForHelp*>(&e) != nullptr ||
      dynamic_cast<const CLI::CallForAllHelp*>(&e) != nullptr ||
      dynamic_cast<const CLI::CallForVersion*>(&e) != nullptr) {
    return const_cast<CLI::App&>(app).exit(e);
  }
  const std::string command = command_path(app, args);
  if (command == "kvpack" && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    // No subcommand matched: name the word that was meant as one (a value of --simd aside).
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--simd") {
        ++i;
      } else if (!args[i].empty() && args[i][0] != '-') {
        print_error(fmt::format("unknown command '{}' (see kvpack --help)", args[i]));
        return 2;
      }
    }
  }
  print_error(fmt::format("{} (see {} --help)", e.what(), command));
  return 2;
}

}  // namespace kvpack::cli
