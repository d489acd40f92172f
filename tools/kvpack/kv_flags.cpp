#include "kv_flags.h"

namespace kvpack::cli {

void KvFlags::add_to(CLI::App* cmd, bool repeatable, const std::string& default_text) {
  auto* opt = cmd->add_option("--kv", kv,
                              "K/V cache policy: k=FORMAT,v=FORMAT[;LAYERS:k=FORMAT,v=FORMAT...]"
                              " (see `kvpack formats` and docs/cli.md)")
                  ->default_str(default_text)
                  ->type_name("POLICY");
  if (!repeatable) opt->expected(1);
  // CLI11 2.1 accepts no multi-letter single-dash names, so llama.cpp's -ctk is spelled --ctk.
  cmd->add_option("--cache-type-k,--ctk", ctk, "K cache format, as llama.cpp's -ctk")
      ->type_name("FORMAT");
  cmd->add_option("--cache-type-v,--ctv", ctv, "V cache format, as llama.cpp's -ctv")
      ->type_name("FORMAT");
}

std::vector<format::KVPolicy> KvFlags::policies(
    const std::vector<format::KVPolicy>& fallback) const {
  std::vector<format::KVPolicy> out;
  for (const auto& spec : kv) out.push_back(format::KVPolicy::parse(spec));
  if (!ctk.empty() || !ctv.empty()) out.push_back(format::KVPolicy::from_llama_flags(ctk, ctv));
  return out.empty() ? fallback : out;
}

}  // namespace kvpack::cli
