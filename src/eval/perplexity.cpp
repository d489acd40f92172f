#include "eval/perplexity.h"

#include <cmath>
#include <memory>

#include "base/error.h"
#include "base/timer.h"
#include "eval/metrics.h"
#include "eval/policy_cost.h"
#include "model/sampler.h"

namespace kvpack::eval {
namespace {

// Rows compared per pool task: enough to amortise the hand-off, few enough to balance.
constexpr int kRowsPerTask = 8;

// One policy's cache and forward pass, reused for every chunk.
struct Runner {
  std::unique_ptr<cache::Cache> cache;
  std::unique_ptr<model::Forward> forward;
};

Runner make_runner(const model::Model& model, const format::KVPolicy& policy,
                   const PerplexityOptions& o, ThreadPool& pool) {
  const model::ModelSpec& hp = model.spec();
  policy.validate(hp.n_layers(), hp.head_dim_k, hp.head_dim_v, o.page_tokens);
  Runner r;
  r.cache =
      std::make_unique<cache::Cache>(model.cache_config(policy, o.context, o.page_tokens, o.batch));
  r.forward = std::make_unique<model::Forward>(
      model, *r.cache, pool, model::ForwardOptions{.max_chunk = o.batch, .n_ctx = o.context});
  return r;
}

// Per scored token of every chunk so far.
struct Scores {
  std::vector<double> nll, kld, dnll;
  std::vector<uint8_t> same_top1;
  std::vector<double> chunk_ppl;
  double seconds = 0;
};

// Evaluates one chunk from an empty sequence; logits: [c - 1 - c/2][n_vocab] of the scored rows.
void run_chunk(Runner& r, std::span<const int32_t> chunk, int64_t first, float* logits) {
  const cache::SeqId seq = r.cache->create();
  r.forward->eval(seq, chunk.first(static_cast<size_t>(first)));
  r.forward->eval_all(seq, chunk.subspan(static_cast<size_t>(first), chunk.size() - 1 - first),
                      logits);
  r.cache->free(seq);
}

// Scores n rows of `logits` against the targets, and against the baseline's rows when given.
void score_rows(const float* logits, const float* base, const std::vector<double>& base_nll,
                std::span<const int32_t> targets, int n_vocab, ThreadPool& pool, Scores& s) {
  const size_t n = targets.size(), v = static_cast<size_t>(n_vocab);
  std::vector<double> nll(n), kld(n, 0.0);
  std::vector<uint8_t> same(n, 1);
  std::vector<std::vector<double>> scratch(static_cast<size_t>(pool.size()),
                                           std::vector<double>(2 * v));
  pool.parallel_for((static_cast<int64_t>(n) + kRowsPerTask - 1) / kRowsPerTask,
                    [&](int64_t task, int thread) {
                      std::vector<double>& w = scratch[static_cast<size_t>(thread)];
                      const std::span<double> lq(w.data(), v), lb(w.data() + v, v);
                      const size_t end = std::min(n, static_cast<size_t>(task + 1) * kRowsPerTask);
                      for (size_t r = static_cast<size_t>(task) * kRowsPerTask; r < end; ++r) {
                        const std::span<const float> q(logits + r * v, v);
                        log_softmax(q, lq);
                        nll[r] = eval::nll(lq, targets[r]);
                        if (base == nullptr) continue;
                        const std::span<const float> b(base + r * v, v);
                        log_softmax(b, lb);
                        kld[r] = kl_divergence(lb, lq);
                        same[r] = model::argmax(q) == model::argmax(b);
                      }
                    });
  double sum = 0;
  for (size_t r = 0; r < n; ++r) {
    s.nll.push_back(nll[r]);
    sum += nll[r];
    if (base == nullptr) continue;
    s.kld.push_back(kld[r]);
    s.same_top1.push_back(same[r]);
    s.dnll.push_back(nll[r] - base_nll[r]);
  }
  s.chunk_ppl.push_back(std::exp(sum / static_cast<double>(n)));
}

PolicyPerplexity summarise(const format::KVPolicy& policy, const Scores& s, bool is_baseline,
                           const model::ModelSpec& hp, int page_tokens) {
  PolicyPerplexity p;
  p.policy = policy;
  p.is_baseline = is_baseline;
  p.bytes_per_token = policy_bytes_per_token(hp, policy, page_tokens);
  p.bits_per_value = bits_per_value(hp, p.bytes_per_token);
  p.tokens = static_cast<int64_t>(s.nll.size());
  Summary nll;
  for (double x : s.nll) nll.add(x);
  p.ppl = std::exp(nll.mean());
  p.ppl_stderr = p.ppl * nll.stderr_of_mean();
  p.chunk_ppl = s.chunk_ppl;
  p.seconds = s.seconds;
  if (is_baseline) return p;
  p.has_kld = true;
  Summary kld, dnll;
  for (double x : s.kld) kld.add(x);
  for (double x : s.dnll) dnll.add(x);
  p.kld_values = s.kld;
  p.kld_mean = kld.mean();
  p.kld_stderr = kld.stderr_of_mean();
  p.kld_median = kld.percentile(50);
  p.kld_p99 = kld.percentile(99);
  p.kld_max = kld.max();
  double same = 0;
  for (uint8_t x : s.same_top1) same += x;
  const double n = static_cast<double>(s.same_top1.size());
  p.top1 = same / n;
  p.top1_stderr = n > 1 ? std::sqrt(p.top1 * (1 - p.top1) / (n - 1)) : 0;
  p.dnll = dnll.mean();
  p.dnll_stderr = dnll.stderr_of_mean();
  return p;
}

}  // namespace

std::vector<int32_t> perplexity_chunk(std::span<const int32_t> tokens, int64_t index,
                                      const PerplexityOptions& o) {
  const size_t start = static_cast<size_t>(index * o.context);
  KVPACK_ASSERT(start + static_cast<size_t>(o.context) <= tokens.size(), "chunk {} past the end",
                index);
  std::vector<int32_t> chunk(tokens.begin() + static_cast<ptrdiff_t>(start),
                             tokens.begin() + static_cast<ptrdiff_t>(start + o.context));
  if (o.bos >= 0) chunk[0] = o.bos;
  return chunk;
}

int64_t perplexity_chunk_count(int64_t n_tokens, const PerplexityOptions& o) {
  if (o.context < 4)
    fail("perplexity: the context (-c) must be at least 4 tokens, got {}", o.context);
  const int64_t whole = n_tokens / o.context;
  if (whole < 1) {
    fail("perplexity: the text has {} tokens, fewer than one chunk of {} (-c)", n_tokens,
         o.context);
  }
  return o.max_chunks > 0 ? std::min<int64_t>(whole, o.max_chunks) : whole;
}

PerplexityReport evaluate_perplexity(const model::Model& model, std::span<const int32_t> tokens,
                                     const format::KVPolicy& baseline,
                                     const std::vector<format::KVPolicy>& policies,
                                     const PerplexityOptions& o, ThreadPool& pool,
                                     const Progress& progress) {
  const double start = now_seconds();
  const model::ModelSpec& hp = model.spec();
  PerplexityReport rep;
  rep.model_name = hp.name;
  rep.text_tokens = static_cast<int64_t>(tokens.size());
  rep.chunks = perplexity_chunk_count(rep.text_tokens, o);
  rep.options = o;
  rep.threads = pool.size();

  std::vector<format::KVPolicy> all = {baseline};
  all.insert(all.end(), policies.begin(), policies.end());
  std::vector<Runner> runners;
  for (const auto& p : all) runners.push_back(make_runner(model, p, o, pool));
  std::vector<Scores> scores(all.size());

  const int64_t first = o.context / 2;
  const size_t rows = static_cast<size_t>(o.context - 1 - first);
  const size_t v = static_cast<size_t>(hp.n_vocab);
  std::vector<float> base(rows * v), logits(rows * v);  // [rows][n_vocab] each
  const int64_t total = rep.chunks * static_cast<int64_t>(all.size());
  for (int64_t c = 0; c < rep.chunks; ++c) {
    const std::vector<int32_t> chunk = perplexity_chunk(tokens, c, o);
    const std::span<const int32_t> targets =
        std::span<const int32_t>(chunk).subspan(static_cast<size_t>(first + 1), rows);
    for (size_t p = 0; p < all.size(); ++p) {
      const double t0 = now_seconds();
      run_chunk(runners[p], chunk, first, p == 0 ? base.data() : logits.data());
      scores[p].seconds += now_seconds() - t0;
      if (p == 0) {
        score_rows(base.data(), nullptr, {}, targets, hp.n_vocab, pool, scores[0]);
      } else {
        const std::vector<double> base_nll(scores[0].nll.end() - static_cast<ptrdiff_t>(rows),
                                           scores[0].nll.end());
        score_rows(logits.data(), base.data(), base_nll, targets, hp.n_vocab, pool, scores[p]);
      }
      if (progress) {
        progress(c * static_cast<int64_t>(all.size()) + static_cast<int64_t>(p) + 1, total,
                 policy_label(all[p]));
      }
    }
  }
  for (size_t p = 0; p < all.size(); ++p) {
    rep.rows.push_back(summarise(all[p], scores[p], p == 0, hp, o.page_tokens));
  }
  const double base_ppl = rep.rows[0].ppl;
  for (auto& r : rep.rows) r.dppl = r.ppl - base_ppl;
  rep.seconds = now_seconds() - start;
  return rep;
}

}  // namespace kvpack::eval
