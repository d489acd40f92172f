#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/table.h"
#include "base/units.h"
#include "eval/passkey.h"
#include "eval/policy_cost.h"

namespace kvpack::eval {
namespace {

std::string depth_text(double d) {
  return fmt::format("{:g}%", d);
}

// Rows: lengths; columns: depths, then the row's total. Cells: correct/trials.
Table grid(const PolicyPasskey& row, const PasskeyOptions& o) {
  std::vector<std::string> head = {"length"};
  for (double d : o.depths) head.push_back(depth_text(d));
  head.push_back("all");
  Table t(head);
  size_t at = 0;
  for (int64_t len : o.lengths) {
    std::vector<std::string> cells = {format_count(len)};
    int correct = 0, total = 0;
    for (size_t d = 0; d < o.depths.size(); ++d, ++at) {
      const PasskeyCell& c = row.cells[at];
      cells.push_back(fmt::format("{}/{}", c.correct, c.trials.size()));
      correct += c.correct;
      total += static_cast<int>(c.trials.size());
    }
    cells.push_back(format_percent(static_cast<double>(correct) / total, 0));
    t.add_row(std::move(cells));
  }
  return t;
}

// With a baseline: per policy, the answers unlike the baseline's among the trials both ran, and
// the flips right -> wrong / wrong -> right; then the policy's seconds.
Table summary(const PasskeyReport& r) {
  const bool paired = !r.baseline.empty();
  std::vector<std::string> head = {"K/V", "B/token", "bits", "correct", "accuracy"};
  if (paired) {
    head.insert(head.end(), {"compared", "unlike baseline", "right->wrong", "wrong->right"});
  }
  head.push_back("seconds");
  Table t(head);
  t.align_left(0);
  for (const PolicyPasskey& p : r.rows) {
    std::vector<std::string> cells = {
        policy_label(p.policy), fmt::format("{:.1f}", p.bytes_per_token),
        fmt::format("{:.2f}", p.bits_per_value), fmt::format("{}/{}", p.correct, p.total),
        format_percent(static_cast<double>(p.correct) / p.total, 1)};
    if (paired) {
      const PasskeyAgreement a = p.vs_baseline.value_or(PasskeyAgreement{});
      cells.insert(cells.end(),
                   {std::to_string(a.compared), std::to_string(a.differ),
                    std::to_string(a.right_to_wrong), std::to_string(a.wrong_to_right)});
    }
    cells.push_back(fmt::format("{:.1f}", p.seconds));
    t.add_row(std::move(cells));
  }
  return t;
}

std::string baseline_note(const PasskeyReport& r) {
  if (r.baseline.empty()) return {};
  return fmt::format(
      "Paired with `{}` ({}): trials both ran (same length, depth and key); an answer is unlike "
      "the baseline's when its first run of digits differs.\n",
      r.baseline, r.baseline_source);
}

std::string settings(const PasskeyReport& r) {
  std::vector<std::string> ls;
  for (int64_t l : r.options.lengths) ls.push_back(format_count(l));
  const std::string lengths = fmt::format("{}", fmt::join(ls, ","));
  const std::string depths = fmt::format("{:g}", fmt::join(r.options.depths, ","));
  return fmt::format(
      "lengths {} tokens, depths {} %, {} trials per cell (seed {}), greedy answers of up to {} "
      "tokens; model context {}; {}-token pages, {} threads, {:.1f} s",
      lengths, depths, r.options.trials, r.options.seed, r.options.answer_tokens, r.model_context,
      r.options.page_tokens, r.threads, r.seconds);
}

}  // namespace

Report render_passkey(const PasskeyReport& r, const std::string& command) {
  Report out;
  const Table sum = summary(r);
  out.text = fmt::format("{}: passkey retrieval, {}\n", r.model_name, settings(r));
  out.markdown = fmt::format(
      "# Passkey retrieval: {}\n\n```\n{}\n```\n\n{}. Prompt: "
      "docs/passkey.md. Cells: correct answers / trials.\n\n",
      r.model_name, command, settings(r));
  for (const PolicyPasskey& p : r.rows) {
    const Table g = grid(p, r.options);
    out.text += fmt::format("\n{} ({:.1f} B/token)\n{}", p.policy.to_string(), p.bytes_per_token,
                            g.to_text());
    out.markdown += fmt::format("## `{}` ({:.1f} B/token)\n\n{}\n", p.policy.to_string(),
                                p.bytes_per_token, g.to_markdown());
  }
  out.text += fmt::format("\n{}", sum.to_text());
  out.markdown += fmt::format("## Summary\n\n{}\n{}![accuracy against bytes per token]({})\n",
                              sum.to_markdown(), baseline_note(r), kChartLink);
  if (!r.baseline.empty()) out.text += baseline_note(r);

  out.json = {
      {"eval", "passkey"},
      {"command", command},
      {"model", {{"path", r.model_path}, {"name", r.model_name}, {"context", r.model_context}}},
      {"lengths", r.options.lengths},
      {"depths", r.options.depths},
      {"trials", r.options.trials},
      {"seed", r.options.seed},
      {"answer_tokens", r.options.answer_tokens},
      {"page_tokens", r.options.page_tokens},
      {"threads", r.threads},
      {"seconds", r.seconds},
      {"baseline",
       r.baseline.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(r.baseline)},
      {"baseline_source", r.baseline_source},
      {"results", nlohmann::ordered_json::array()}};
  for (const PolicyPasskey& p : r.rows) {
    nlohmann::ordered_json cells = nlohmann::ordered_json::array();
    for (const PasskeyCell& c : p.cells) {
      nlohmann::ordered_json trials = nlohmann::ordered_json::array();
      for (const PasskeyTrial& t : c.trials) {
        trials.push_back({{"key", t.key}, {"answer", t.answer}, {"correct", t.correct}});
      }
      cells.push_back({{"length", c.length},
                       {"depth", c.depth},
                       {"correct", c.correct},
                       {"accuracy", static_cast<double>(c.correct) / c.trials.size()},
                       {"seconds", c.seconds},
                       {"trials", trials}});
    }
    nlohmann::ordered_json vs;  // null without a baseline
    if (p.vs_baseline) {
      vs = {{"compared", p.vs_baseline->compared},
            {"differ", p.vs_baseline->differ},
            {"right_to_wrong", p.vs_baseline->right_to_wrong},
            {"wrong_to_right", p.vs_baseline->wrong_to_right}};
    }
    out.json["results"].push_back({{"policy", p.policy.to_string()},
                                   {"label", policy_label(p.policy)},
                                   {"bytes_per_token", p.bytes_per_token},
                                   {"bits_per_value", p.bits_per_value},
                                   {"correct", p.correct},
                                   {"total", p.total},
                                   {"accuracy", static_cast<double>(p.correct) / p.total},
                                   {"seconds", p.seconds},
                                   {"vs_baseline", vs},
                                   {"cells", cells}});
  }
  out.chart.title = fmt::format("{}: passkey accuracy against bytes per token", r.model_name);
  out.chart.x_label = "KV cache bytes per token";
  out.chart.y_label = "passkey accuracy";
  out.chart.lower_is_better = false;
  out.chart.note = settings(r);
  for (const PolicyPasskey& p : r.rows) {
    out.chart.points.push_back(
        {p.bytes_per_token, static_cast<double>(p.correct) / p.total, policy_label(p.policy)});
  }
  return out;
}

}  // namespace kvpack::eval
