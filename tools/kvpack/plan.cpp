// `kvpack plan`: how much context (or how many sessions) fits a memory budget, for one model
// (-m model.gguf or --preset) or, with neither, for every built-in preset.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "base/error.h"
#include "base/table.h"
#include "base/units.h"
#include "commands.h"
#include "kv_flags.h"
#include "plan_report.h"

namespace kvpack::cli {
namespace {

struct PlanFlags {
  std::string model_path;
  std::string preset;
  KvFlags kv;
  std::string context;
  std::string budget;
  std::string overhead;
  int page_tokens = 32;
  double weight_bits = plan::kDefaultWeightBits;
  bool weight_bits_given = false;
  bool list_presets = false;
  bool list_devices = false;
  bool json = false;
  bool markdown = false;
};

const char* const kOverviewPolicies[] = {"k=f16,v=f16", "k=q8,v=q8",         "k=q4,v=q8",
                                         "k=q8,v=q4",   "k=turbo4,v=turbo4", "k=turbo3,v=turbo3"};
const char* const kOverviewBudgets[] = {"gpu-16gb", "gpu-24gb", "gpu-32gb"};

std::string attention_text(const plan::ModelShape& m) {
  const int sliding = m.sliding_layers();
  if (sliding == 0) return "all full attention";
  return fmt::format("{} sliding (window {}) + {} full", sliding, m.window(),
                     m.kv_layers() - sliding);
}

void print_model_json(const plan::ModelShape& m, const std::vector<plan::Plan>& plans,
                      const PlanSettings& s) {
  using J = nlohmann::ordered_json;
  // Head counts: one number when every layer agrees, else one entry per layer.
  J q = J::array();
  J kv = J::array();
  J sliding = J::array();
  for (int l = 0; l < m.n_layers(); ++l) {
    const auto& layer = m.layers[static_cast<size_t>(l)];
    q.push_back(layer.q_heads);
    kv.push_back(layer.kv_heads);
    if (layer.sliding() && layer.kv_heads > 0) sliding.push_back(l);
  }
  const auto collapse = [](const J& a) {
    for (const auto& x : a) {
      if (x != a.front()) return a;
    }
    return a.front();
  };
  q = collapse(q);
  kv = collapse(kv);
  J out;
  out["model"] = {{"name", m.name},
                  {"source", m.source},
                  {"arch", m.arch},
                  {"layers", m.n_layers()},
                  {"q_heads", q},
                  {"kv_heads", kv},
                  {"head_dim_k", m.head_dim_k},
                  {"head_dim_v", m.head_dim_v},
                  {"sliding_layers", sliding},
                  {"window", m.window()},
                  {"native_context", m.native_context},
                  {"max_context", m.max_context},
                  {"params", m.params},
                  {"weight_bytes", m.weight_bytes},
                  {"weights_from", m.weights_from}};
  out["page_tokens"] = s.page_tokens;
  out["context"] = plans.front().context;
  out["overhead_bytes"] = s.overhead;
  out["budget"] = s.budgets.empty()
                      ? J(nullptr)
                      : J{{"label", s.budgets[0].label}, {"bytes", s.budgets[0].bytes}};
  J arr = J::array();
  for (const auto& p : plans) {
    J j = {{"policy", p.policy.to_string()},
           {"bytes_per_token",
            {{"full", p.kv.bytes_per_token_full()},
             {"sliding", p.kv.bytes_per_token_sliding()},
             {"total", p.kv.bytes_per_token_full() + p.kv.bytes_per_token_sliding()}}},
           {"kv_bytes", p.kv_bytes},
           {"kv_tail_bytes", p.kv.tail_bytes},
           {"weight_bytes", p.weight_bytes},
           {"overhead_bytes", p.overhead_bytes},
           {"total_bytes", p.total_bytes}};
    if (p.budget_bytes) {
      j["budget_bytes"] = *p.budget_bytes;
      j["fits"] = p.headroom >= 0;
      j["headroom_bytes"] = p.headroom;
      j["max_context"] = p.max_context >= 0 ? J(p.max_context) : J(nullptr);
      j["max_context_exceeds_model"] = p.max_context < 0 || p.max_context > m.max_context;
      j["sessions"] = p.sessions;
    }
    arr.push_back(j);
  }
  out["plans"] = arr;
  std::printf("%s\n", out.dump(2).c_str());
}

void print_model_header(const plan::ModelShape& m, const PlanSettings& s) {
  std::printf("model     %s (%s, arch %s)\n", m.name.c_str(), m.source.c_str(), m.arch.c_str());
  std::printf("shape     %d layers, %s; %s query / %s KV heads; head dim %d (K), %d (V)\n",
              m.n_layers(), attention_text(m).c_str(), m.q_heads_text().c_str(),
              m.kv_heads_text().c_str(), m.head_dim_k, m.head_dim_v);
  std::printf("context   native %s, supported up to %s\n", group_digits(m.native_context).c_str(),
              group_digits(m.max_context).c_str());
  std::printf("weights   %s (%s)\n", format_bytes(static_cast<double>(m.weight_bytes)).c_str(),
              m.weights_from.c_str());
  std::printf("overhead  %s (runtime, prefill buffers, logits, page tables; an estimate)\n",
              format_bytes(static_cast<double>(s.overhead)).c_str());
  if (!s.budgets.empty()) std::printf("budget    %s\n", s.budgets[0].label.c_str());
  std::printf("\n");
}

void print_model_text(const plan::ModelShape& m, const std::vector<plan::Plan>& plans,
                      const PlanSettings& s) {
  const bool budget = !s.budgets.empty();
  const bool sliding = m.sliding_layers() > 0;
  const int64_t ctx = plans.front().context;
  print_model_header(m, s);
  std::vector<std::string> head = {"policy", "B/token"};
  if (sliding) head.push_back("B/token sliding");
  for (const char* h : {"KV @ ", "total @ "}) head.push_back(h + short_tokens(ctx));
  if (budget) {
    for (const char* h : {"headroom", "max context", "sessions"}) head.emplace_back(h);
  }
  Table t(head);
  t.align_left(0);
  for (const auto& p : plans) {
    std::vector<std::string> row = {
        p.policy.to_string(), group_digits(static_cast<uint64_t>(p.kv.bytes_per_token_full()))};
    if (sliding) row.push_back(group_digits(static_cast<uint64_t>(p.kv.bytes_per_token_sliding())));
    row.push_back(format_bytes(static_cast<double>(p.kv_bytes)));
    row.push_back(format_bytes(static_cast<double>(p.total_bytes)));
    if (budget) {
      row.push_back(format_bytes(static_cast<double>(p.headroom)));
      row.push_back(p.max_context < 0 ? "any"
                                      : group_digits(static_cast<uint64_t>(p.max_context)) +
                                            (p.max_context > m.max_context ? "*" : ""));
      row.push_back(group_digits(static_cast<uint64_t>(p.sessions)));
    }
    t.add_row(std::move(row));
  }
  std::printf("%s", (s.markdown ? t.to_markdown() : t.to_text()).c_str());
  std::printf("\nB/token: K+V bytes per token, scales and page alignment included%s.\n",
              sliding ? " (sliding layers:\nonly until their window fills)" : "");
  std::printf(
      "KV: one session of %s tokens in whole %d-token pages, plus an f32 page per layer\n"
      "for the tokens not yet encoded.\n",
      group_digits(ctx).c_str(), s.page_tokens);
  if (budget) {
    std::printf(
        "max context: one session, whole pages (* more than the model supports).\n"
        "sessions: independent sessions of %s tokens that fit together (no shared "
        "prefixes).\n",
        group_digits(ctx).c_str());
  }
}

void run_model(const PlanFlags& f, const PlanSettings& s) {
  const plan::ModelShape m =
      f.model_path.empty()
          ? plan::preset_shape(plan::find_preset(f.preset), s.weight_bits)
          : plan::gguf_shape(f.model_path, f.weight_bits_given
                                               ? std::optional<double>(s.weight_bits)
                                               : std::nullopt);
  plan::PlanOptions o;
  o.page_tokens = s.page_tokens;
  o.overhead = s.overhead;
  o.context = f.context.empty() ? 0 : parse_count(f.context);
  if (!f.context.empty() && o.context <= 0) {
    fail("invalid --context '{}': expected a positive token count", f.context);
  }
  if (!s.budgets.empty()) o.budget = s.budgets[0];
  std::vector<plan::Plan> plans;
  for (const auto& pol : s.policies) plans.push_back(plan::make_plan(m, pol, o));
  if (s.json) {
    print_model_json(m, plans, s);
  } else {
    print_model_text(m, plans, s);
  }
}

void list_presets(bool markdown) {
  Table t({"preset", "model", "arch", "layers", "q heads", "KV heads", "head dim", "attention",
           "native ctx", "max ctx", "params"});
  t.align_left(0).align_left(1).align_left(2).align_left(7);
  for (const auto& p : plan::presets()) {
    const std::string attention =
        p.swa_period == 0 ? "full"
                          : fmt::format("{} sliding ({}) : 1 full", p.swa_period - 1, p.window);
    t.add_row({std::string(p.name), std::string(p.display), std::string(p.arch),
               std::to_string(p.layers), std::to_string(p.q_heads), std::to_string(p.kv_heads),
               std::to_string(p.head_dim), attention, format_count(p.native_context),
               format_count(p.max_context), fmt::format("{:.2f}B", p.params / 1e9)});
  }
  std::printf("%s", (markdown ? t.to_markdown() : t.to_text()).c_str());
}

void list_devices(bool markdown) {
  Table t({"device", "memory", "budget", "description"});
  t.align_left(0).align_left(3);
  for (const auto& d : plan::devices()) {
    t.add_row({std::string(d.name), format_bytes(static_cast<double>(d.memory)),
               format_bytes(static_cast<double>(d.usable)), std::string(d.description)});
  }
  std::printf("%s", (markdown ? t.to_markdown() : t.to_text()).c_str());
  std::printf(
      "\nGPUs: the whole memory (the driver's context is in the planner's overhead). Macs: macOS "
      "lets the GPU wire\nabout 2/3 of unified memory up to 36 GB and 3/4 above "
      "(sysctl iogpu.wired_limit_mb raises it).\n");
}

PlanSettings settings_from(const PlanFlags& f, bool overview) {
  PlanSettings s;
  s.page_tokens = f.page_tokens;
  s.weight_bits = f.weight_bits;
  s.json = f.json;
  s.markdown = f.markdown;
  if (!f.overhead.empty()) s.overhead = parse_bytes(f.overhead);
  std::vector<format::KVPolicy> fallback;
  if (overview) {
    for (const char* spec : kOverviewPolicies) fallback.push_back(format::KVPolicy::parse(spec));
  } else {
    fallback.push_back(format::KVPolicy());
  }
  s.policies = f.kv.policies(fallback);
  if (!f.budget.empty()) {
    s.budgets.push_back(plan::parse_budget(f.budget));
  } else if (overview) {
    for (const char* name : kOverviewBudgets) s.budgets.push_back(plan::parse_budget(name));
  }
  return s;
}

void run_plan(const PlanFlags& f) {
  if (f.list_presets) return list_presets(f.markdown);
  if (f.list_devices) return list_devices(f.markdown);
  if (!f.model_path.empty() && !f.preset.empty())
    fail("give either -m FILE or --preset NAME, not both");
  const bool overview = f.model_path.empty() && f.preset.empty();
  if (overview && !f.context.empty()) {
    fail(
        "--context needs a model: give -m FILE or --preset NAME (the overview reports max "
        "context)");
  }
  const PlanSettings s = settings_from(f, overview);
  if (overview) {
    print_overview(s);
  } else {
    run_model(f, s);
  }
}

}  // namespace

std::string group_digits(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string short_tokens(int64_t n) {
  if (n >= 1024 * 1024) return fmt::format("{:.3g}M", static_cast<double>(n) / (1024.0 * 1024.0));
  if (n >= 100 * 1024) return fmt::format("{}k", n / 1024);
  if (n >= 1024) return fmt::format("{:.3g}k", static_cast<double>(n) / 1024.0);
  return std::to_string(n);
}

std::string policy_label(const format::KVPolicy& policy) {
  if (!policy.uniform()) return policy.to_string();
  return fmt::format("{}/{}", format::info(policy.base().k).name,
                     format::info(policy.base().v).name);
}

std::string formula_text(const PlanSettings& s) {
  return fmt::format(
      "kvpack plan: how much context fits in memory\n\n"
      "  bytes/token = sum over KV layers of kv_heads x (K + V bytes of one head's page) / {P}\n"
      "                (page bytes from the format registry: codes, scales, norms, 64-byte "
      "aligned)\n"
      "  KV(ctx)     = full layers: bytes/token x ctx; sliding layers: at most window + one page;\n"
      "                + one f32 page per layer for the newest tokens, not yet encoded\n"
      "  total       = weights + overhead ({O}) + KV(ctx)  <=  budget  ->  max context, "
      "sessions\n",
      fmt::arg("P", s.page_tokens), fmt::arg("O", format_bytes(static_cast<double>(s.overhead))));
}

void add_plan_command(CLI::App& app) {
  auto f = std::make_shared<PlanFlags>();
  auto* cmd = app.add_subcommand(
      "plan",
      "Memory plan: K/V bytes per token, max context and sessions for a budget. With no model, "
      "the overview of every preset at 16/24/32 GB");
  cmd->add_option("-m,--model", f->model_path, "GGUF file (reads metadata and tensor infos only)")
      ->type_name("FILE");
  cmd->add_option("--preset", f->preset, "Built-in model shape, e.g. qwen3-8b (--list-presets)")
      ->type_name("NAME");
  cmd->add_flag("--list-presets", f->list_presets, "List the built-in model shapes");
  f->kv.add_to(cmd, /*repeatable=*/true);
  cmd->add_option("-c,--context", f->context,
                  "Context of one session, e.g. 32768 or 128k (default: the model's native)")
      ->type_name("TOKENS");
  std::string devices;
  for (const auto& d : plan::devices())
    devices += (devices.empty() ? "" : ", ") + std::string(d.name);
  cmd->add_option("--budget", f->budget,
                  "Memory budget: a size (16GiB, 24GB) or a device: " + devices)
      ->type_name("SIZE|DEVICE");
  cmd->add_flag("--list-devices", f->list_devices, "List the named devices and their budgets");
  cmd->add_option("--page-tokens", f->page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_option(
         "--weights-bits", f->weight_bits,
         "Bits per weight for presets (default ~Q4_K_M); with -m, overrides the tensor sizes")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 64.0))
      ->each([f](const std::string&) { f->weight_bits_given = true; });
  cmd->add_option("--overhead", f->overhead,
                  "Fixed overhead besides weights and K/V (runtime, prefill buffers, logits, page "
                  "tables)")
      ->default_str("1GiB")
      ->type_name("SIZE");
  cmd->add_flag("--json", f->json, "Print JSON instead of tables");
  cmd->add_flag("--markdown", f->markdown, "Print tables as Markdown");
  cmd->callback([f] { run_plan(*f); });
}

}  // namespace kvpack::cli
