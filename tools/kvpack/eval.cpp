// `kvpack eval`: the parent of the quality evaluations (ppl, passkey, attention, policy).
#include "commands.h"

namespace kvpack::cli {

void add_eval_command(CLI::App& app) {
  auto* eval = app.add_subcommand(
      "eval",
      "Quality of K/V policies: perplexity and KLD, passkey retrieval, attention "
      "fidelity, per-layer policy search");
  eval->require_subcommand(1);
  add_eval_ppl_command(*eval);
  add_eval_passkey_command(*eval);
  add_eval_attention_command(*eval);
  add_eval_policy_command(*eval);
}

}  // namespace kvpack::cli
