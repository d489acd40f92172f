#include <fmt/format.h>

#include "base/table.h"
#include "eval/attention_fidelity.h"
#include "eval/policy_cost.h"

namespace kvpack::eval {
namespace {

std::string fmt3(double v) {
  return format_small(v);
}

std::string dominant(double k, double v) {
  if (k == v) return "-";
  return k > v ? "K" : "V";
}

Table summary(const FidelityReport& r) {
  Table t({"K/V", "B/token", "bits", "out err", "worst layer", "cos min", "logit bias", "logit std",
           fmt::format("top-{}", r.options.top_k), "link kept", "link dw", "K-only err",
           "V-only err", "dominant"});
  t.align_left(0);
  for (const PolicyFidelity& p : r.rows) {
    double cos_min = 1, bias = 0, sd = 0, topk = 0, kept = 0, dw = 0;
    for (const LayerFidelity& l : p.layers) {
      cos_min = std::min(cos_min, l.out_cos_min);
      bias += l.logit_err_mean / p.layers.size();
      sd += l.logit_err_std / p.layers.size();
      topk += l.topk_overlap / p.layers.size();
      kept += l.link_kept / p.layers.size();
      dw += l.link_rel_change / p.layers.size();
    }
    const int worst = p.most_sensitive.empty() ? 0 : p.most_sensitive[0];
    t.add_row(
        {policy_label(p.policy), fmt::format("{:.1f}", p.bytes_per_token),
         fmt::format("{:.2f}", p.bits_per_value), fmt3(p.mean_rel_error),
         fmt::format("{} ({})", worst, fmt3(p.layers[static_cast<size_t>(worst)].out_rel_error)),
         fmt::format("{:.4f}", cos_min), fmt3(bias), fmt3(sd), format_percent(topk, 1),
         format_percent(kept, 1), fmt::format("{:+.1f}%", 100 * dw),
         fmt3(std::sqrt(p.k_only_sq / p.layers.size())),
         fmt3(std::sqrt(p.v_only_sq / p.layers.size())),
         p.k_only_sq == p.v_only_sq
             ? std::string("-")
             : fmt::format("{} ({}/{} layers K)", dominant(p.k_only_sq, p.v_only_sq),
                           p.k_dominant_layers, p.layers.size())});
  }
  return t;
}

Table layers(const PolicyFidelity& p, const FidelityOptions& o) {
  Table t({"layer", "K", "V", "out err", "cos mean", "cos min", "K-only err", "V-only err", "dom",
           "logit bias", "logit std", fmt::format("top-{}", o.top_k), "links", "link w", "link dw",
           "link abs dw", "kept"});
  for (size_t c : {1, 2}) t.align_left(c);
  for (const LayerFidelity& l : p.layers) {
    t.add_row(
        {std::to_string(l.layer), std::string(format::info(l.k).name),
         std::string(format::info(l.v).name), fmt3(l.out_rel_error),
         fmt::format("{:.5f}", l.out_cos_mean), fmt::format("{:.5f}", l.out_cos_min),
         fmt3(l.k_only_rel_error), fmt3(l.v_only_rel_error),
         dominant(l.k_only_rel_error, l.v_only_rel_error), fmt3(l.logit_err_mean),
         fmt3(l.logit_err_std), format_percent(l.topk_overlap, 1), std::to_string(l.links),
         fmt::format("{:.3f}", l.link_weight), fmt::format("{:+.1f}%", 100 * l.link_rel_change),
         fmt::format("{:.1f}%", 100 * l.link_abs_rel_change), format_percent(l.link_kept, 1)});
  }
  return t;
}

std::string findings(const PolicyFidelity& p) {
  if (p.mean_rel_error == 0 && p.k_only_sq == 0 && p.v_only_sq == 0) {
    return "the attention output is exact in every layer";
  }
  std::string s = "most sensitive layers:";
  for (int l : p.most_sensitive) {
    s += fmt::format(" {} ({})", l, fmt3(p.layers[static_cast<size_t>(l)].out_rel_error));
  }
  s += fmt::format(
      "; {} dominates: K-only error exceeds V-only error in {} of {} layers (RMS over layers: K "
      "only {}, V only {})",
      p.k_only_sq >= p.v_only_sq ? "K" : "V", p.k_dominant_layers, p.layers.size(),
      fmt3(std::sqrt(p.k_only_sq / p.layers.size())),
      fmt3(std::sqrt(p.v_only_sq / p.layers.size())));
  return s;
}

std::string settings(const FidelityReport& r) {
  return fmt::format(
      "q/k/v of {} tokens captured with an f32 cache; each policy's pages hold exactly those K/V; "
      "top-{} overlap of attention weights; long-distance links: keys {} or more tokens back; "
      "{}-token pages, {} threads, {:.1f} s",
      r.tokens, r.options.top_k, r.options.long_distance, r.page_tokens, r.threads, r.seconds);
}

constexpr const char* kLegend =
    "out err: ||O - O_f32|| / ||O_f32|| of the attention output over every (token, head) row "
    "(summary: mean over layers); cos: cosine per row; logit bias / std: mean and spread of the "
    "error of q.k/sqrt(d) as the K format scores it; top-k: overlap of the k most-attended keys; "
    "link: the strongest key at least the long distance back, per query and head, when attended "
    "above uniform (kept: still the strongest; dw, abs dw: summed change of its weight over the "
    "summed weight); K-only / V-only: output error with only "
    "that side in the policy's format (the other f32).";

nlohmann::ordered_json layer_json(const LayerFidelity& l) {
  return {{"layer", l.layer},
          {"k", format::info(l.k).name},
          {"v", format::info(l.v).name},
          {"out_rel_error", l.out_rel_error},
          {"out_cos_mean", l.out_cos_mean},
          {"out_cos_min", l.out_cos_min},
          {"k_only_rel_error", l.k_only_rel_error},
          {"v_only_rel_error", l.v_only_rel_error},
          {"logit_err_mean", l.logit_err_mean},
          {"logit_err_std", l.logit_err_std},
          {"topk_overlap", l.topk_overlap},
          {"links", l.links},
          {"link_weight", l.link_weight},
          {"link_rel_change", l.link_rel_change},
          {"link_abs_rel_change", l.link_abs_rel_change},
          {"link_kept", l.link_kept}};
}

}  // namespace

Report render_attention(const FidelityReport& r, const std::string& command) {
  Report out;
  const Table sum = summary(r);
  out.text = fmt::format("{}: attention fidelity against an f32 cache, {}\n{}\n", r.model_name,
                         settings(r), sum.to_text());
  out.markdown = fmt::format("# Attention fidelity: {}\n\n```\n{}\n```\n\n{}.\n\n{}\n{}\n\n",
                             r.model_name, command, settings(r), sum.to_markdown(), kLegend);
  for (const PolicyFidelity& p : r.rows) {
    const Table t = layers(p, r.options);
    out.text += fmt::format("\n{} ({:.1f} B/token): {}\n{}", p.policy.to_string(),
                            p.bytes_per_token, findings(p), t.to_text());
    out.markdown += fmt::format("## `{}` ({:.1f} B/token)\n\n{}.\n\n{}\n", p.policy.to_string(),
                                p.bytes_per_token, findings(p), t.to_markdown());
  }
  out.text += fmt::format("\n{}\n", kLegend);
  out.markdown +=
      fmt::format("![attention output error against bytes per token]({})\n", kChartLink);
  out.json = {{"eval", "attention"},
              {"command", command},
              {"model", {{"path", r.model_path}, {"name", r.model_name}}},
              {"tokens", r.tokens},
              {"top_k", r.options.top_k},
              {"long_distance", r.options.long_distance},
              {"page_tokens", r.page_tokens},
              {"threads", r.threads},
              {"seconds", r.seconds},
              {"results", nlohmann::ordered_json::array()}};
  for (const PolicyFidelity& p : r.rows) {
    nlohmann::ordered_json ls = nlohmann::ordered_json::array();
    for (const LayerFidelity& l : p.layers) ls.push_back(layer_json(l));
    out.json["results"].push_back({{"policy", p.policy.to_string()},
                                   {"label", policy_label(p.policy)},
                                   {"bytes_per_token", p.bytes_per_token},
                                   {"bits_per_value", p.bits_per_value},
                                   {"mean_rel_error", p.mean_rel_error},
                                   {"most_sensitive_layers", p.most_sensitive},
                                   {"dominant", p.k_only_sq >= p.v_only_sq ? "K" : "V"},
                                   {"k_dominant_layers", p.k_dominant_layers},
                                   {"k_only_rms", std::sqrt(p.k_only_sq / p.layers.size())},
                                   {"v_only_rms", std::sqrt(p.v_only_sq / p.layers.size())},
                                   {"layers", ls}});
  }
  out.chart.title = fmt::format("{}: attention output error against bytes per token", r.model_name);
  out.chart.x_label = "KV cache bytes per token";
  out.chart.y_label = "attention output relative error (mean over layers)";
  out.chart.log_y = true;
  out.chart.note = settings(r);
  for (const PolicyFidelity& p : r.rows) {
    out.chart.points.push_back({p.bytes_per_token, p.mean_rel_error, policy_label(p.policy)});
  }
  return out;
}

}  // namespace kvpack::eval
