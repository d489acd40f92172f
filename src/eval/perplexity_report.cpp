#include <fmt/format.h>

#include "base/table.h"
#include "eval/perplexity.h"
#include "eval/policy_cost.h"

namespace kvpack::eval {
namespace {

Table make_table(const PerplexityReport& r) {
  Table t({"K/V", "B/token", "bits", "PPL", "+-", "dPPL", "KLD mean", "+-", "KLD median", "KLD p99",
           "KLD max", "top-1", "+-"});
  t.align_left(0);
  for (const PolicyPerplexity& p : r.rows) {
    std::vector<std::string> cells = {
        policy_label(p.policy) + (p.is_baseline ? " (baseline)" : ""),
        fmt::format("{:.1f}", p.bytes_per_token), fmt::format("{:.2f}", p.bits_per_value),
        fmt::format("{:.4f}", p.ppl), fmt::format("{:.4f}", p.ppl_stderr)};
    if (p.has_kld) {
      cells.insert(cells.end(), {fmt::format("{:+.4f}", p.dppl), format_small(p.kld_mean),
                                 format_small(p.kld_stderr), format_small(p.kld_median),
                                 format_small(p.kld_p99), format_small(p.kld_max),
                                 format_percent(p.top1), format_percent(p.top1_stderr)});
    } else {
      cells.insert(cells.end(), {"-", "-", "-", "-", "-", "-", "-", "-"});
    }
    t.add_row(std::move(cells));
  }
  return t;
}

std::string settings(const PerplexityReport& r) {
  const int64_t first = r.options.context / 2;
  return fmt::format(
      "{} chunks of {} tokens ({} scored per chunk, {} in all; the text has {} tokens), BOS first "
      "in each chunk: {}, {}-token pages, {} threads, {:.1f} s",
      r.chunks, r.options.context, r.options.context - 1 - first,
      r.rows.empty() ? 0 : r.rows[0].tokens, r.text_tokens, r.options.bos >= 0 ? "yes" : "no",
      r.options.page_tokens, r.threads, r.seconds);
}

constexpr const char* kLegend =
    "KLD: KL(baseline || policy) of the next-token distributions per scored token, in nats; "
    "top-1: tokens whose most likely next token agrees with the baseline's; dPPL: PPL minus the "
    "baseline's; +-: standard errors. B/token: cache bytes per token (all layers, K and V, page "
    "padding included); bits: per stored value.";

}  // namespace

nlohmann::ordered_json to_json(const PolicyPerplexity& p) {
  nlohmann::ordered_json j = {{"policy", p.policy.to_string()},
                              {"label", policy_label(p.policy)},
                              {"baseline", p.is_baseline},
                              {"bytes_per_token", p.bytes_per_token},
                              {"bits_per_value", p.bits_per_value},
                              {"tokens", p.tokens},
                              {"ppl", p.ppl},
                              {"ppl_stderr", p.ppl_stderr},
                              {"chunk_ppl", p.chunk_ppl},
                              {"seconds", p.seconds}};
  if (p.has_kld) {
    j["dppl"] = p.dppl;
    j["dnll"] = p.dnll;
    j["dnll_stderr"] = p.dnll_stderr;
    j["kld_mean"] = p.kld_mean;
    j["kld_stderr"] = p.kld_stderr;
    j["kld_median"] = p.kld_median;
    j["kld_p99"] = p.kld_p99;
    j["kld_max"] = p.kld_max;
    j["top1"] = p.top1;
    j["top1_stderr"] = p.top1_stderr;
  }
  return j;
}

Report render_perplexity(const PerplexityReport& r, const std::string& command) {
  Report out;
  const Table t = make_table(r);
  const std::string base = r.rows.empty() ? "" : r.rows[0].policy.to_string();
  out.text = fmt::format("{}: perplexity and KLD against {} over {}\n{}\n{}\n", r.model_name, base,
                         settings(r), t.to_text(), kLegend);
  out.markdown = fmt::format(
      "# Perplexity and KL divergence: {}\n\n```\n{}\n```\n\n{}; baseline `{}`.\n\n{}\n{}\n\n"
      "![KLD against bytes per token]({})\n",
      r.model_name, command, settings(r), base, t.to_markdown(), kLegend, kChartLink);
  out.json = {{"eval", "ppl"},
              {"command", command},
              {"model", {{"path", r.model_path}, {"name", r.model_name}}},
              {"context", r.options.context},
              {"chunks", r.chunks},
              {"text_tokens", r.text_tokens},
              {"scored_per_chunk", r.options.context - 1 - r.options.context / 2},
              {"bos_first", r.options.bos >= 0},
              {"page_tokens", r.options.page_tokens},
              {"batch", r.options.batch},
              {"threads", r.threads},
              {"seconds", r.seconds},
              {"baseline", base},
              {"results", nlohmann::ordered_json::array()}};
  for (const auto& p : r.rows) out.json["results"].push_back(to_json(p));
  out.chart.title = fmt::format("{}: KLD vs {} against bytes per token", r.model_name, base);
  out.chart.x_label = "KV cache bytes per token";
  out.chart.y_label = "mean KLD (nats)";
  out.chart.log_y = true;
  out.chart.note = settings(r);
  for (const auto& p : r.rows) {
    if (p.has_kld)
      out.chart.points.push_back({p.bytes_per_token, p.kld_mean, policy_label(p.policy)});
  }
  return out;
}

}  // namespace kvpack::eval
