#include "kv_flags.h"

namespace kvpack::cli {

void KvFlags::add_to(CLI::App* cmd, bool repeatable, const std::string& default_text) {
  auto* opt = cmd->add_option("--kv", kv,
                              "K/V cache policy: k=FORMAT,v=FORMAT[;LAYERS:k=FORMAT,v=FORMAT...]"
                              " (see `kvpack formats` and docs/cli.md)")
                  ->default_str(default_text)
                  ->type_name("POLICY");
  if (!repeatable) opt->expected(1);
  // CLI11 refuses multi-letter single-dash names; main() rewrites -ctk / -ctv to these.
  cmd->add_option("--cache-type-k", ctk, "K cache format (llama.cpp's -ctk also works)")
      ->type_name("FORMAT");
  cmd->add_option("--cache-type-v", ctv, "V cache format (llama.cpp's -ctv also works)")
      ->type_name("FORMAT");
}

std::vector<std::string> rewrite_llama_flags(int argc, const char* const* argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"-ctk", "--cache-type-k"},
                                   {"-ctv", "--cache-type-v"}}) {
      if (a == from || a.rfind(from + "=", 0) == 0) a = to + a.substr(from.size());
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<format::KVPolicy> KvFlags::policies(
    const std::vector<format::KVPolicy>& fallback) const {
  std::vector<format::KVPolicy> out;
  for (const auto& spec : kv) out.push_back(format::KVPolicy::parse(spec));
  if (!ctk.empty() || !ctv.empty()) out.push_back(format::KVPolicy::from_llama_flags(ctk, ctv));
  return out.empty() ? fallback : out;
}

}  // namespace kvpack::cli
