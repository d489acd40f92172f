// `kvpack dev`: developer tools. `dev synth-model` writes a random-weight Llama GGUF of any shape
// (benchmarks at real attention shapes, tests, bug reports) without downloading a model.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/units.h"
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

void synth(SynthOptions o) {
  o.m.n_ctx = parse_count(o.ctx);
  o.m.type = weight_type(o.type);
  o.m.embd_type = weight_type(o.embd_type);
  const model::GgufWriter w = model::synthetic_llama(o.m);
  const uint64_t size = w.write(o.out);
  std::printf("%s: %s\n", o.out.c_str(), format_bytes(static_cast<double>(size)).c_str());
}

}  // namespace

void add_dev_command(CLI::App& app) {
  auto* dev = app.add_subcommand("dev", "Developer tools (synthetic models)");
  dev->require_subcommand(1);
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = dev->add_subcommand(
      "synth-model", "Write a random-weight llama GGUF of the given shape (no tokenizer)");
  cmd->add_option("--out", o->out, "Output GGUF path")->required();
  cmd->add_option("--layers", o->m.n_layers, "Blocks")->capture_default_str();
  cmd->add_option("--embd", o->m.n_embd, "Embedding width")->capture_default_str();
  cmd->add_option("--heads", o->m.n_heads, "Query heads")->capture_default_str();
  cmd->add_option("--kv-heads", o->m.n_kv_heads, "KV heads")->capture_default_str();
  cmd->add_option("--head-dim", o->m.head_dim, "Head dim (K and V)")->capture_default_str();
  cmd->add_option("--ff", o->m.n_ff, "FFN hidden width")->capture_default_str();
  cmd->add_option("--vocab", o->m.n_vocab, "Vocabulary size")->capture_default_str();
  cmd->add_option("--ctx", o->ctx, "Context length (llama.context_length)")->capture_default_str();
  cmd->add_option("--type", o->type,
                  "Matrix weight type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, "
                  "q3_k, q4_k, q5_k, q6_k, iq4_xs")
      ->capture_default_str();
  cmd->add_option("--embd-type", o->embd_type, "token_embd / output type")->capture_default_str();
  cmd->add_option("--rope-base", o->m.rope_base, "RoPE frequency base")->capture_default_str();
  cmd->add_flag("--tied", o->m.tied_output, "Leave output.weight out (tied embeddings)");
  cmd->add_flag("--rope-freqs", o->m.rope_freqs, "Write a llama3-style rope_freqs.weight");
  cmd->add_option("--seed", o->m.seed, "Weight seed")->capture_default_str();
  cmd->callback([o] { synth(*o); });
}

}  // namespace kvpack::cli
