#include "commands.h"
namespace kvpack::cli {
void add_eval_policy_command(CLI::App& eval) {
  eval.add_subcommand("policy", "todo");
}
}  // namespace kvpack::cli
