// Paired comparison of passkey answers with a baseline's (passkey.h): from the same run, or read
// back from an earlier run's JSON report, so a grid split over several runs (each policy with the
// number of keys its cost allows) is still compared key by key with one f16 run.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <tuple>

#include "base/error.h"
#include "eval/passkey.h"

namespace kvpack::eval {
namespace {

// A trial's identity across runs: length, depth (to 1e-3 %) and key. Trial indices are not
// enough (another seed gives other keys); keys alone are not either (two cells may draw one).
using TrialKey = std::tuple<int64_t, int64_t, int>;

TrialKey trial_key(const PasskeyCell& c, const PasskeyTrial& t) {
  return {c.length, std::llround(c.depth * 1000), t.key};
}

}  // namespace

void compare_with_baseline(PasskeyReport& report, const PolicyPasskey& baseline,
                           const std::string& source) {
  std::map<TrialKey, const PasskeyTrial*> base;
  for (const PasskeyCell& c : baseline.cells) {
    for (const PasskeyTrial& t : c.trials) base.emplace(trial_key(c, t), &t);
  }
  for (PolicyPasskey& row : report.rows) {
    PasskeyAgreement a;
    for (const PasskeyCell& c : row.cells) {
      for (const PasskeyTrial& t : c.trials) {
        const auto it = base.find(trial_key(c, t));
        if (it == base.end()) continue;
        const PasskeyTrial& b = *it->second;
        ++a.compared;
        a.differ += first_digit_run(t.answer) != first_digit_run(b.answer);
        a.right_to_wrong += b.correct && !t.correct;
        a.wrong_to_right += !b.correct && t.correct;
      }
    }
    row.vs_baseline = a;
  }
  report.baseline = baseline.policy.to_string();
  report.baseline_source = source;
}

PolicyPasskey passkey_row_from_json(const nlohmann::json& report, const std::string& policy,
                                    const std::string& what) {
  if (!report.is_object() || report.value("eval", "") != "passkey" || !report.contains("results") ||
      !report["results"].is_array()) {
    fail("{}: not a kvpack eval passkey JSON report", what);
  }
  for (const nlohmann::json& r : report["results"]) {
    if (r.value("policy", "") != policy) continue;
    PolicyPasskey row;
    try {
      row.policy = format::KVPolicy::parse(policy);
      for (const nlohmann::json& c : r.at("cells")) {
        PasskeyCell cell{c.at("length").get<int64_t>(), c.at("depth").get<double>(), 0, {}, 0};
        for (const nlohmann::json& t : c.at("trials")) {
          cell.trials.push_back({t.at("key").get<int>(), t.at("answer").get<std::string>(),
                                 t.at("correct").get<bool>()});
          cell.correct += cell.trials.back().correct;
        }
        row.cells.push_back(std::move(cell));
      }
    } catch (const nlohmann::json::exception& e) {
      fail("{}: malformed passkey result for '{}': {}", what, policy, e.what());
    }
    return row;
  }
  fail("{}: has no passkey results for the baseline policy '{}'", what, policy);
}

}  // namespace kvpack::eval
