// `kvpack plan` with no model: the formula, then bytes per token and max context for every
// built-in preset at each budget and policy (the README's `make run`).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "base/json_text.h"
#include "base/table.h"
#include "base/units.h"
#include "plan_report.h"

namespace kvpack::cli {
namespace {

// One cell of the max-context tables: nullopt when the weights and overhead leave no room,
// -1 when every KV layer slides (unbounded).
std::optional<int64_t> max_context(const plan::ModelShape& m, const plan::KvFootprint& fp,
                                   const plan::Budget& b, const PlanSettings& s) {
  const auto room = plan::kv_room(m, b.bytes, s.overhead);
  if (!room) return std::nullopt;
  return fp.max_context(*room);
}

std::string context_cell(const plan::ModelShape& m, std::optional<int64_t> ctx) {
  if (!ctx) return "-";
  if (*ctx < 0) return "any";
  return short_tokens(*ctx) + (*ctx > m.max_context ? "*" : "");
}

struct Row {
  plan::ModelShape model;
  std::vector<plan::KvFootprint> fps;  // one per policy
};

std::vector<Row> compute_rows(const PlanSettings& s) {
  std::vector<Row> rows;
  for (const auto& p : plan::presets()) {
    Row r{plan::preset_shape(p, s.weight_bits), {}};
    for (const auto& pol : s.policies)
      r.fps.push_back(plan::kv_footprint(r.model, pol, s.page_tokens));
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string render(const Table& t, const PlanSettings& s) {
  return s.markdown ? t.to_markdown() : t.to_text();
}

void print_bytes_table(const std::vector<Row>& rows, const PlanSettings& s) {
  std::vector<std::string> head = {"model", "layers", "KV x dim", "weights"};
  for (const auto& pol : s.policies) head.push_back(policy_label(pol));
  Table t(head);
  t.align_left(0).align_left(1);
  for (const auto& r : rows) {
    const plan::Preset& p = plan::find_preset(r.model.name);
    std::string layers = std::to_string(p.layers);
    if (r.model.sliding_layers() > 0) {
      layers += fmt::format(" ({} global)", r.model.kv_layers() - r.model.sliding_layers());
    }
    std::vector<std::string> row = {std::string(p.display), layers,
                                    fmt::format("{} x {}", p.kv_heads, p.head_dim),
                                    format_bytes(static_cast<double>(r.model.weight_bytes))};
    for (const auto& fp : r.fps) {
      row.push_back(group_digits(static_cast<uint64_t>(fp.bytes_per_token_full())));
    }
    t.add_row(std::move(row));
  }
  std::printf(
      "K+V bytes per token on full-attention layers, per K/V format pair (sliding layers add "
      "theirs only up\nto their window):\n\n%s\n",
      render(t, s).c_str());
}

void print_context_table(const std::vector<Row>& rows, const plan::Budget& b,
                         const PlanSettings& s) {
  std::vector<std::string> head = {"model", "max ctx"};
  for (const auto& pol : s.policies) head.push_back(policy_label(pol));
  Table t(head);
  t.align_left(0);
  for (const auto& r : rows) {
    const plan::Preset& p = plan::find_preset(r.model.name);
    std::vector<std::string> row = {std::string(p.display), short_tokens(r.model.max_context)};
    for (const auto& fp : r.fps)
      row.push_back(context_cell(r.model, max_context(r.model, fp, b, s)));
    t.add_row(std::move(row));
  }
  std::printf("Max context for one session in %s:\n\n%s\n", b.label.c_str(), render(t, s).c_str());
}

void print_json(const std::vector<Row>& rows, const PlanSettings& s) {
  using J = nlohmann::ordered_json;
  J out;
  out["page_tokens"] = s.page_tokens;
  out["weight_bits"] = s.weight_bits;
  out["overhead_bytes"] = s.overhead;
  J budgets = J::array();
  for (const auto& b : s.budgets) budgets.push_back({{"label", b.label}, {"bytes", b.bytes}});
  out["budgets"] = budgets;
  J policies = J::array();
  for (const auto& pol : s.policies) policies.push_back(pol.to_string());
  out["policies"] = policies;
  J models = J::array();
  for (const auto& r : rows) {
    J m = {{"name", r.model.name},
           {"max_context", r.model.max_context},
           {"weight_bytes", r.model.weight_bytes}};
    J per_policy = J::array();
    for (size_t i = 0; i < s.policies.size(); ++i) {
      const plan::KvFootprint& fp = r.fps[i];
      J ctx = J::array();
      for (const auto& b : s.budgets) {
        const auto c = max_context(r.model, fp, b, s);
        ctx.push_back(c && *c >= 0 ? J(*c) : J(nullptr));
      }
      per_policy.push_back({{"policy", s.policies[i].to_string()},
                            {"bytes_per_token_full", fp.bytes_per_token_full()},
                            {"bytes_per_token_sliding", fp.bytes_per_token_sliding()},
                            {"max_context", ctx}});
    }
    m["policies"] = per_policy;
    models.push_back(m);
  }
  out["models"] = models;
  std::printf("%s\n", json_text(out).c_str());
}

}  // namespace

void print_overview(const PlanSettings& s) {
  const std::vector<Row> rows = compute_rows(s);
  if (s.json) {
    print_json(rows, s);
    return;
  }
  std::printf("%s\n", formula_text(s).c_str());
  print_bytes_table(rows, s);
  for (const auto& b : s.budgets) print_context_table(rows, b, s);
  std::printf(
      "Weights: the published parameter count x %.3g bits (about llama.cpp's Q4_K_M). Overhead: "
      "%s for the\nruntime, prefill buffers, logits and page tables (an estimate; --overhead). "
      "k = 1024 tokens;\ncontexts are whole %d-token pages. * more than the model supports "
      "(native, or with YaRN where the\nmodel card allows it): the memory holds it, the model "
      "was not trained for it. - the weights and\noverhead alone do not fit. `kvpack plan "
      "--preset NAME` details one model; --help lists the flags.\n",
      s.weight_bits, format_bytes(static_cast<double>(s.overhead)).c_str(), s.page_tokens);
}

}  // namespace kvpack::cli
