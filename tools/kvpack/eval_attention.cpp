#include "commands.h"
namespace kvpack::cli {
void add_eval_attention_command(CLI::App& eval) {
  eval.add_subcommand("attention", "todo");
}
}  // namespace kvpack::cli
