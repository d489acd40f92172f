#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/table.h"
#include "eval/policy_cost.h"
#include "eval/policy_eval.h"

namespace kvpack::eval {
namespace {

std::string name(format::FormatId f) {
  return std::string(format::info(f).name);
}

// Spearman's rank correlation (no tie correction); NaN for fewer than 3 values.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 3) return std::nan("");
  const auto ranks = [n](const std::vector<double>& x) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](size_t i, size_t j) { return x[i] < x[j]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n; ++i) r[idx[i]] = static_cast<double>(i);
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  double d2 = 0;
  for (size_t i = 0; i < n; ++i) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
  const double nn = static_cast<double>(n);
  return 1 - 6 * d2 / (nn * (nn * nn - 1));
}

Table choice_table(const PolicySearchReport& r) {
  Table t({"layer", "K", "K err", "V", "V err"});
  t.align_left(1).align_left(3);
  for (int l = 0; l < r.table.n_layers; ++l) {
    const Option& k =
        r.items[2 * static_cast<size_t>(l)][static_cast<size_t>(r.result.choice[2 * l])];
    const Option& v =
        r.items[2 * static_cast<size_t>(l) + 1][static_cast<size_t>(r.result.choice[2 * l + 1])];
    t.add_row({std::to_string(l), name(k.format), format_small(std::sqrt(k.error)), name(v.format),
               format_small(std::sqrt(v.error))});
  }
  return t;
}

Table sensitivity_table(const SensitivityTable& s) {
  std::vector<std::string> head = {"layer/role"};
  for (format::FormatId f : s.formats) head.push_back(name(f));
  Table t(head);
  t.align_left(0);
  for (bool k : {true, false}) {
    std::vector<std::string> row = {k ? "K B/token" : "V B/token"};
    for (double b : k ? s.k_bytes : s.v_bytes)
      row.push_back(b < 0 ? "-" : fmt::format("{:.1f}", b));
    t.add_row(std::move(row));
  }
  t.add_separator();
  for (int l = 0; l < s.n_layers; ++l) {
    for (bool k : {true, false}) {
      std::vector<std::string> row = {fmt::format("{} {}", l, k ? "K" : "V")};
      for (size_t f = 0; f < s.formats.size(); ++f) {
        const bool ok = (k ? s.k_bytes : s.v_bytes)[f] >= 0;
        const double e = (k ? s.k_error : s.v_error)[static_cast<size_t>(l)][f];
        row.push_back(ok ? format_small(std::sqrt(e)) : "-");
      }
      t.add_row(std::move(row));
    }
  }
  return t;
}

Table confirmation_table(const PolicySearchReport& r) {
  Table t({"K/V", "kind", "B/token", "bits", "predicted err", "PPL", "dPPL", "KLD mean", "+-",
           "KLD p99", "top-1", "dKLD vs searched", "+-"});
  t.align_left(0).align_left(1);
  t.add_row({policy_label(r.baseline.policy), "baseline",
             fmt::format("{:.1f}", r.baseline.bytes_per_token),
             fmt::format("{:.2f}", r.baseline.bits_per_value), "-",
             fmt::format("{:.4f}", r.baseline.ppl), "-", "-", "-", "-", "-", "-", "-"});
  for (size_t i = 0; i < r.confirmed.size(); ++i) {
    const ConfirmedPolicy& c = r.confirmed[i];
    const PolicyPerplexity& m = c.measured;
    t.add_row({policy_label(m.policy) + (i == r.best ? " *" : ""), c.kind,
               fmt::format("{:.1f}", m.bytes_per_token), fmt::format("{:.2f}", m.bits_per_value),
               format_small(std::sqrt(c.predicted)), fmt::format("{:.4f}", m.ppl),
               fmt::format("{:+.4f}", m.dppl), format_small(m.kld_mean), format_small(m.kld_stderr),
               format_small(m.kld_p99), format_percent(m.top1),
               i == 0 ? "-" : fmt::format("{:+.3e}", c.dkld),
               i == 0 ? "-" : format_small(c.dkld_stderr)});
  }
  return t;
}

std::string verdict(const PolicySearchReport& r) {
  std::string v;
  if (r.confirmed.size() == 1) {
    v = "No uniform policy of the candidates fits the budget, so there is nothing to confirm "
        "against.";
  } else if (r.best == 0) {
    size_t next = 1;
    for (size_t i = 2; i < r.confirmed.size(); ++i) {
      if (r.confirmed[i].measured.kld_mean < r.confirmed[next].measured.kld_mean) next = i;
    }
    const ConfirmedPolicy& n = r.confirmed[next];
    v = fmt::format(
        "Confirmed: the searched policy has the lowest mean KLD of the {} policies measured "
        "within the budget. The best uniform one, {}, is {:+.3e} +- {} nats per token worse{}.",
        r.confirmed.size(), policy_label(n.measured.policy), n.dkld, format_small(n.dkld_stderr),
        std::fabs(n.dkld) > 2 * n.dkld_stderr ? ""
                                              : " (within two standard errors: not a clear win)");
  } else {
    const ConfirmedPolicy& b = r.confirmed[r.best];
    if (std::fabs(b.dkld) <= 2 * b.dkld_stderr) {
      v = fmt::format(
          "A tie: the uniform policy {} measured a lower mean KLD than the searched one by {:+.3e} "
          "+- {} nats per token, within two standard errors over {} tokens; more --chunks would "
          "separate them.",
          policy_label(b.measured.policy), b.dkld, format_small(b.dkld_stderr), b.measured.tokens);
    } else {
      v = fmt::format(
          "Not confirmed: the uniform policy {} measured a lower mean KLD than the searched one "
          "({:+.3e} +- {} nats per token); the attention-error model misranked them on this "
          "model, so prefer {}.",
          policy_label(b.measured.policy), b.dkld, format_small(b.dkld_stderr),
          b.measured.policy.to_string());
    }
  }
  std::vector<double> pred, meas;
  for (const auto& c : r.confirmed) {
    pred.push_back(c.predicted);
    meas.push_back(c.measured.kld_mean);
  }
  const double rho = spearman(pred, meas);
  if (!std::isnan(rho)) {
    v += fmt::format(
        " Predicted error against measured KLD over the measured policies: Spearman rank "
        "correlation {:.2f} (1: the error model orders them as KLD does).",
        rho);
  }
  return v;
}

std::string settings(const PolicySearchReport& r) {
  const int64_t c = r.options.ppl.context;
  return fmt::format(
      "budget {} = {:.1f} B/token ({:.2f} bits per value); sensitivity measured on chunk {} "
      "(tokens {}..{}), {}; confirmed on {} chunk{} of {} tokens against {}; {}-token pages, {} "
      "threads, {:.1f} s",
      r.options.budget_text, r.options.budget_bytes_per_token, r.budget_bits, r.calibration_chunk,
      r.calibration_chunk * c, (r.calibration_chunk + 1) * c - 1,
      r.calibration_held_out ? "held out from the confirmation" : "the only chunk (not held out)",
      r.confirmation_chunks, r.confirmation_chunks == 1 ? "" : "s", c,
      r.baseline.policy.to_string(), r.options.ppl.page_tokens, r.threads, r.seconds);
}

}  // namespace

Report render_policy_search(const PolicySearchReport& r, const std::string& command) {
  Report out;
  const PolicyPerplexity& s = r.confirmed[0].measured;
  const PolicyPerplexity& best = r.confirmed[r.best].measured;
  const std::string head = fmt::format(
      "searched policy: --kv \"{}\"\n  {:.1f} B/token ({:.2f} bits per value), predicted error "
      "{} (sqrt of summed squared attention-output errors)\n",
      s.policy.to_string(), s.bytes_per_token, s.bits_per_value,
      format_small(std::sqrt(r.confirmed[0].predicted)));
  const std::string rec = fmt::format(
      "recommended (lowest measured KLD within the budget): --kv \"{}\"", best.policy.to_string());
  const Table choice = choice_table(r), sens = sensitivity_table(r.table),
              conf = confirmation_table(r);
  const std::string v = verdict(r);
  out.text = fmt::format(
      "{}: per-layer K/V policy search, {}\n\n{}\nper-layer choice:\n{}\nconfirmation (* lowest "
      "KLD):\n{}\n{}\n{}\n\nsensitivity (relative attention-output error, one role in the format, "
      "the other f32):\n{}",
      r.model_name, settings(r), head, choice.to_text(), conf.to_text(), v, rec, sens.to_text());
  out.markdown = fmt::format(
      "# Per-layer K/V policy search: {}\n\n```\n{}\n```\n\n{}.\n\n## "
      "Result\n\n```\n{}```\n\n{}\n\n"
      "{}\n\n`{}`\n\n## Confirmation by KL divergence\n\n{}\n* lowest mean KLD; predicted err: "
      "sqrt of the summed squared attention-output errors the search minimises; dKLD: paired "
      "per-token KLD difference against the searched policy.\n\n![KLD against bytes per token]"
      "({})\n\n## Sensitivity table\n\nRelative error of each layer's attention output with one "
      "role in the format and the other f32; first rows: bytes per token per layer.\n\n{}",
      r.model_name, command, settings(r), head, choice.to_markdown(), v, rec, conf.to_markdown(),
      kChartLink, sens.to_markdown());

  nlohmann::ordered_json table = {{"formats", nlohmann::ordered_json::array()},
                                  {"k_bytes_per_token", r.table.k_bytes},
                                  {"v_bytes_per_token", r.table.v_bytes},
                                  {"k_sq_error", r.table.k_error},
                                  {"v_sq_error", r.table.v_error}};
  for (format::FormatId f : r.table.formats) table["formats"].push_back(name(f));
  nlohmann::ordered_json confirmed = nlohmann::ordered_json::array();
  for (const ConfirmedPolicy& c : r.confirmed) {
    nlohmann::ordered_json j = to_json(c.measured);
    j["kind"] = c.kind;
    j["predicted_sq_error"] = c.predicted;
    j["dkld_vs_searched"] = c.dkld;
    j["dkld_vs_searched_stderr"] = c.dkld_stderr;
    confirmed.push_back(j);
  }
  out.json = {{"eval", "policy"},
              {"command", command},
              {"model", {{"path", r.model_path}, {"name", r.model_name}}},
              {"budget", r.options.budget_text},
              {"budget_bytes_per_token", r.options.budget_bytes_per_token},
              {"budget_bits_per_value", r.budget_bits},
              {"context", r.options.ppl.context},
              {"calibration_chunk", r.calibration_chunk},
              {"calibration_held_out", r.calibration_held_out},
              {"confirmation_chunks", r.confirmation_chunks},
              {"page_tokens", r.options.ppl.page_tokens},
              {"threads", r.threads},
              {"seconds", r.seconds},
              {"searched",
               {{"policy", s.policy.to_string()},
                {"bytes_per_token", s.bytes_per_token},
                {"bits_per_value", s.bits_per_value},
                {"predicted_sq_error", r.confirmed[0].predicted}}},
              {"recommended", best.policy.to_string()},
              {"confirmed", r.best == 0},
              {"verdict", v},
              {"baseline", to_json(r.baseline)},
              {"measured", confirmed},
              {"sensitivity", table}};
  out.chart.title = fmt::format("{}: searched policy vs uniform policies within {}", r.model_name,
                                r.options.budget_text);
  out.chart.x_label = "KV cache bytes per token";
  out.chart.y_label = "mean KLD (nats)";
  out.chart.log_y = true;
  out.chart.note = fmt::format("red: the searched policy; budget {:.1f} B/token",
                               r.options.budget_bytes_per_token);
  for (size_t i = 0; i < r.confirmed.size(); ++i) {
    const PolicyPerplexity& m = r.confirmed[i].measured;
    out.chart.points.push_back({m.bytes_per_token, m.kld_mean, policy_label(m.policy), i == 0});
  }
  return out;
}

}  // namespace kvpack::eval
