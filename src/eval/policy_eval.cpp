#include "eval/policy_eval.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include <fmt/format.h>

#include "base/error.h"
#include "base/timer.h"
#include "eval/metrics.h"
#include "eval/policy_cost.h"

namespace kvpack::eval {
namespace {

// Which chunk calibrates and how many confirm: calibration on the first chunk after the
// confirmation chunks, so the choice is checked on text it was not tuned on.
void plan_chunks(int64_t n_tokens, const PerplexityOptions& o, PolicySearchReport& r) {
  const int64_t whole = perplexity_chunk_count(n_tokens, {.context = o.context});
  int64_t confirm = o.max_chunks > 0 ? std::min<int64_t>(o.max_chunks, whole) : whole;
  if (confirm == whole && whole >= 2) confirm = whole - 1;
  r.confirmation_chunks = confirm;
  r.calibration_held_out = confirm < whole;
  r.calibration_chunk = r.calibration_held_out ? confirm : 0;
}

// Uniform policies from the candidates that fit the budget, best predicted error first.
std::vector<format::KVPolicy> uniform_rivals(const model::ModelSpec& hp,
                                             const PolicySearchOptions& o,
                                             const SensitivityTable& table,
                                             const format::KVPolicy& searched) {
  std::vector<std::pair<double, format::KVPolicy>> fits;
  for (format::FormatId k : o.formats) {
    if (!format::info(k).supports(format::Role::K)) continue;
    for (format::FormatId v : o.formats) {
      if (!format::info(v).supports(format::Role::V)) continue;
      const format::KVPolicy p(k, v);
      if (p == searched ||
          policy_bytes_per_token(hp, p, o.ppl.page_tokens) > o.budget_bytes_per_token) {
        continue;
      }
      const double e = predicted_error(table, p);
      if (!std::isnan(e)) fits.emplace_back(e, p);
    }
  }
  std::stable_sort(fits.begin(), fits.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<format::KVPolicy> out;
  for (size_t i = 0; i < fits.size() && static_cast<int>(i) < o.compare; ++i) {
    out.push_back(fits[i].second);
  }
  return out;
}

// Mean and standard error of a[i] - b[i].
std::pair<double, double> paired_difference(const std::vector<double>& a,
                                            const std::vector<double>& b) {
  KVPACK_ASSERT(a.size() == b.size());
  Summary d;
  for (size_t i = 0; i < a.size(); ++i) d.add(a[i] - b[i]);
  return {d.mean(), d.stderr_of_mean()};
}

}  // namespace

std::vector<format::FormatId> default_search_formats() {
  std::vector<format::FormatId> out;
  for (const format::FormatInfo& f : format::all_formats()) {
    if (f.id != format::FormatId::f32 && f.id != format::FormatId::bf16) out.push_back(f.id);
  }
  return out;
}

SensitivityTable measure_sensitivity(const model::Model& model, const AttentionCapture& c,
                                     const std::vector<format::FormatId>& formats, ThreadPool& pool,
                                     const Progress& progress) {
  const model::ModelSpec& hp = model.spec();
  SensitivityTable t;
  t.n_layers = c.n_layers;
  t.formats = formats;
  t.k_bytes.assign(formats.size(), -1);
  t.v_bytes.assign(formats.size(), -1);
  t.k_error.assign(static_cast<size_t>(c.n_layers), std::vector<double>(formats.size(), 0));
  t.v_error = t.k_error;
  const format::FormatId f32 = format::FormatId::f32;
  PolicyAttention ref(model, c, format::KVPolicy(f32, f32), pool);
  std::vector<std::vector<float>> ref_out;
  for (int l = 0; l < c.n_layers; ++l) ref_out.push_back(ref.output(l));
  const int64_t total = static_cast<int64_t>(formats.size()) * 2;
  int64_t done = 0;
  for (size_t f = 0; f < formats.size(); ++f) {
    for (format::Role role : {format::Role::K, format::Role::V}) {
      const bool k = role == format::Role::K;
      const int dim = k ? c.head_dim_k : c.head_dim_v;
      const format::CodecConfig cc{role, dim, c.page_tokens, c.n_kv_heads, 0};
      if (format::why_unsupported(formats[f], cc).empty()) {
        const format::KVPolicy p =
            k ? format::KVPolicy(formats[f], f32) : format::KVPolicy(f32, formats[f]);
        PolicyAttention pa(model, c, p, pool);
        (k ? t.k_bytes : t.v_bytes)[f] = role_bytes_per_token(hp, role, formats[f], c.page_tokens);
        for (int l = 0; l < c.n_layers; ++l) {
          const double e = relative_error(pa.output(l), ref_out[static_cast<size_t>(l)]);
          (k ? t.k_error : t.v_error)[static_cast<size_t>(l)][f] = e * e;
        }
      }
      if (progress) {
        progress(++done, total,
                 fmt::format("sensitivity {} {}", format::info(formats[f]).name, k ? "K" : "V"));
      }
    }
  }
  return t;
}

PolicySearchReport search_policy(const model::Model& model, std::span<const int32_t> tokens,
                                 const format::KVPolicy& baseline, const PolicySearchOptions& o,
                                 ThreadPool& pool, const Progress& progress) {
  const double start = now_seconds();
  const model::ModelSpec& hp = model.spec();
  if (o.formats.empty()) fail("policy search: no candidate formats");
  if (!(o.budget_bytes_per_token > 0)) fail("policy search: the budget must be positive");
  PolicySearchReport r;
  r.model_name = hp.name;
  r.options = o;
  r.threads = pool.size();
  r.budget_bits = bits_per_value(hp, o.budget_bytes_per_token);
  plan_chunks(static_cast<int64_t>(tokens.size()), o.ppl, r);

  // 1. Calibration.
  const std::vector<int32_t> calib = perplexity_chunk(tokens, r.calibration_chunk, o.ppl);
  const AttentionCapture capture =
      capture_attention(model, calib, o.ppl.batch, o.ppl.page_tokens, pool);
  r.table = measure_sensitivity(model, capture, o.formats, pool, progress);

  // 2. Search.
  r.items = search_items(r.table);
  r.result = search_min_error(r.items, o.budget_bytes_per_token);
  r.searched = policy_from_search(r.items, r.result);

  // 3. Confirmation.
  std::vector<format::KVPolicy> measured = {r.searched};
  const std::vector<format::KVPolicy> rivals = uniform_rivals(hp, o, r.table, r.searched);
  measured.insert(measured.end(), rivals.begin(), rivals.end());
  PerplexityOptions po = o.ppl;
  po.max_chunks = static_cast<int>(r.confirmation_chunks);
  const PerplexityReport ppl =
      evaluate_perplexity(model, tokens, baseline, measured, po, pool, progress);
  r.baseline = ppl.rows[0];
  for (size_t i = 0; i < measured.size(); ++i) {
    ConfirmedPolicy c;
    c.kind = i == 0 ? "searched" : "uniform";
    c.predicted = predicted_error(r.table, measured[i]);
    c.measured = ppl.rows[i + 1];
    std::tie(c.dkld, c.dkld_stderr) =
        paired_difference(c.measured.kld_values, ppl.rows[1].kld_values);
    r.confirmed.push_back(std::move(c));
  }
  for (size_t i = 1; i < r.confirmed.size(); ++i) {
    if (r.confirmed[i].measured.kld_mean < r.confirmed[r.best].measured.kld_mean) r.best = i;
  }
  r.seconds = now_seconds() - start;
  return r;
}

}  // namespace kvpack::eval
