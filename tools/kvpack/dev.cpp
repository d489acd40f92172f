// `kvpack dev`: developer tools. `dev synth-model` writes a random-weight GGUF of any architecture
// kvpack runs and any shape (benchmarks at real shapes, tests, bug reports) without downloading a
// model.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/output_file.h"
#include "base/terminal.h"
#include "base/units.h"
#include "cli_flags.h"
#include "commands.h"
#include "model/ggml_type.h"
#include "model/quant_ref.h"
#include "model/synthetic_model.h"

namespace kvpack::cli {
namespace {

struct SynthOptions {
  std::string out;
  model::SyntheticModel m;
  std::string ctx = "4096";
  std::string type = "f16";
  std::string embd_type = "f32";
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Any type of the weight-type table, by its lower-case ggml name ("q4_k").
model::GgmlType weight_type(const std::string& name) {
  std::string known;
  for (const model::WeightTypeTraits& tr : model::weight_types()) {
    const std::string n = lower(model::ggml_type_name(static_cast<uint32_t>(tr.type)));
    if (n == lower(name)) return tr.type;
    known += (known.empty() ? "" : ", ") + n;
  }
  fail("unknown weight type '{}' (expected one of {})", name, known);
}

// The file's size from the shape alone, checked before any weight is drawn: the writer holds
// every tensor in memory until the file is written, so a shape such as --embd 1000000 --vocab
// 1000000 must be refused up front, not by the system killing kvpack.
void check_synth_size(const model::SyntheticModel& m) {
  const auto bytes = [](model::GgmlType t, double values) {
    const model::GgmlTypeInfo* ti = model::ggml_type_info(static_cast<uint32_t>(t));
    return values / ti->block_size * static_cast<double>(ti->type_size);
  };
  const double embd = m.n_embd, q = static_cast<double>(m.n_heads) * m.head_dim,
               kv = static_cast<double>(m.n_kv_heads) * m.head_dim;
  const double per_layer = embd * (2 * q + 2 * kv) + 3 * embd * m.n_ff;
  const double total = bytes(m.type, per_layer * m.n_layers) +
                       bytes(m.embd_type, embd * m.n_vocab * (m.tied_output ? 1 : 2)) +
                       4 * embd * (2.0 * m.n_layers + 1);
  const double ram = static_cast<double>(physical_memory_bytes());
  if (ram > 0 && total > ram) {
    fail(
        "dev synth-model: the model would take {} of memory while it is written; this machine "
        "has {}",
        format_bytes(total), format_bytes(ram));
  }
}

void synth(SynthOptions o) {
  o.m.n_ctx = parse_context(o.ctx, "--ctx");
  o.m.type = weight_type(o.type);
  o.m.embd_type = weight_type(o.embd_type);
  check_output_path(o.out);  // before the weights are drawn
  check_synth_size(o.m);
  const model::GgufWriter w = model::synthetic_model(o.m);
  const uint64_t size = w.write(o.out);
  std::printf("%s: %s\n", terminal_safe(o.out).c_str(),
              format_bytes(static_cast<double>(size)).c_str());
}

}  // namespace

void add_dev_command(CLI::App& app) {
  auto* dev = app.add_subcommand("dev", "Developer tools (synthetic models)");
  dev->require_subcommand(1);
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = dev->add_subcommand(
      "synth-model",
      "Write a random-weight GGUF of the given architecture and shape (no tokenizer)");
  cmd->add_option("--out", o->out, "Output GGUF path")->required();
  cmd->add_option("--arch", o->m.arch,
                  "Architecture: llama, qwen2, qwen3, qwen3moe, gemma2, gemma3")
      ->capture_default_str();
  cmd->add_option("--layers", o->m.n_layers, "Blocks")->capture_default_str();
  cmd->add_option("--embd", o->m.n_embd, "Embedding width")->capture_default_str();
  cmd->add_option("--heads", o->m.n_heads, "Query heads")->capture_default_str();
  cmd->add_option("--kv-heads", o->m.n_kv_heads, "KV heads")->capture_default_str();
  cmd->add_option("--head-dim", o->m.head_dim, "Head dim (K and V)")->capture_default_str();
  cmd->add_option("--ff", o->m.n_ff, "FFN hidden width")->capture_default_str();
  cmd->add_option("--vocab", o->m.n_vocab, "Vocabulary size")->capture_default_str();
  cmd->add_option("--ctx", o->ctx, "Context length ({arch}.context_length)")->capture_default_str();
  cmd->add_option("--window", o->m.window, "Sliding window of Gemma's sliding layers (0: unset)")
      ->capture_default_str();
  cmd->add_option("--experts", o->m.n_expert, "qwen3moe: experts")->capture_default_str();
  cmd->add_option("--experts-used", o->m.n_expert_used, "qwen3moe: experts per token")
      ->capture_default_str();
  cmd->add_option("--expert-ff", o->m.n_ff_exp, "qwen3moe: each expert's FFN width")
      ->capture_default_str();
  cmd->add_option("--type", o->type,
                  "Matrix weight type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, "
                  "q3_k, q4_k, q5_k, q6_k, iq4_xs")
      ->capture_default_str();
  cmd->add_option("--embd-type", o->embd_type, "token_embd / output type")->capture_default_str();
  cmd->add_option("--rope-base", o->m.rope_base, "RoPE frequency base")
      ->capture_default_str()
      ->check(finite_range(1, 1e12));
  cmd->add_flag("--tied", o->m.tied_output, "Leave output.weight out (tied embeddings)");
  cmd->add_flag("--rope-freqs", o->m.rope_freqs, "Write a llama3-style rope_freqs.weight");
  add_seed_flag(cmd, o->m.seed, "Weight seed");
  cmd->callback([o] { synth(*o); });
}

}  // namespace kvpack::cli
