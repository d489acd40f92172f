#include "eval/attention_fidelity.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "base/timer.h"
#include "eval/metrics.h"
#include "eval/policy_cost.h"

namespace kvpack::eval {
namespace {

// Query tokens per work item: each item scores its rows against the keys they can see.
constexpr int kTileTokens = 16;

// Sums over the rows of one work item, merged in item order so results do not depend on threads.
struct RowStats {
  double err_sum = 0, err_sq = 0;
  int64_t err_n = 0;
  double topk_sum = 0;
  int64_t topk_n = 0;
  int64_t links = 0;
  double link_w = 0, link_rel = 0, link_abs = 0, link_kept = 0;

  void add(const RowStats& o) {
    err_sum += o.err_sum, err_sq += o.err_sq, err_n += o.err_n;
    topk_sum += o.topk_sum, topk_n += o.topk_n;
    links += o.links, link_w += o.link_w, link_rel += o.link_rel, link_abs += o.link_abs;
    link_kept += o.link_kept;
  }
};

// Logits (unscaled) of `rows` queries against keys 0..n_keys-1 of one KV head, read through the
// view's K format: its score() on encoded pages, a plain dot product on the f32 tail.
// q: [rows][head_dim_k] raw, qp: [rows][query_floats()] prepared; logits: [rows][stride].
void score_keys(const cache::LayerView& view, int head, const float* q, const float* qp, int rows,
                int64_t n_keys, float* logits, size_t stride) {
  const format::Codec& codec = *view.k_codec;
  const int pt = view.page_tokens, dk = view.head_dim_k;
  const size_t pages = std::min(view.page_ids.size(), static_cast<size_t>((n_keys + pt - 1) / pt));
  for (size_t p = 0; p < pages; ++p) {
    codec.score(view.k_block(p, head), pt, qp, rows, logits + p * pt, static_cast<int>(stride));
  }
  for (int64_t t = view.encoded_tokens(); t < n_keys; ++t) {
    const float* k = view.k_tail_row(head, static_cast<int>(t - view.encoded_tokens()));
    for (int r = 0; r < rows; ++r) {
      float dot = 0;
      for (int j = 0; j < dk; ++j) dot += q[static_cast<size_t>(r) * dk + j] * k[j];
      logits[static_cast<size_t>(r) * stride + static_cast<size_t>(t)] = dot;
    }
  }
}

// softmax weight of key j in a row of scaled logits s[0..n).
struct Softmax {
  double max = -std::numeric_limits<double>::infinity(), sum = 0;
  Softmax(const float* s, int64_t n, double scale) {
    for (int64_t j = 0; j < n; ++j) max = std::max(max, s[j] * scale);
    for (int64_t j = 0; j < n; ++j) sum += std::exp(s[j] * scale - max);
  }
  double weight(float s, double scale) const { return std::exp(s * scale - max) / sum; }
};

// Statistics of one query row: reference logits s, policy logits sp, keys 0..n-1.
void row_stats(const float* s, const float* sp, int64_t n, double scale, const FidelityOptions& o,
               RowStats& st) {
  for (int64_t j = 0; j < n; ++j) {
    const double e = (static_cast<double>(sp[j]) - s[j]) * scale;
    st.err_sum += e;
    st.err_sq += e * e;
  }
  st.err_n += n;
  if (n > o.top_k) {
    st.topk_sum +=
        top_k_overlap({sp, static_cast<size_t>(n)}, {s, static_cast<size_t>(n)}, o.top_k);
    ++st.topk_n;
  }
  const int64_t far = n - o.long_distance;  // keys 0..far-1 are long_distance or more back
  if (far > 0) {
    const int64_t ref = std::max_element(s, s + far) - s;
    const double w = Softmax(s, n, scale).weight(s[ref], scale);
    // A link is a key attended more than uniformly; weaker ones carry no information.
    if (w * static_cast<double>(n) < 1) return;
    const int64_t pol = std::max_element(sp, sp + far) - sp;
    const double wp = Softmax(sp, n, scale).weight(sp[ref], scale);
    ++st.links;
    st.link_w += w;
    st.link_rel += wp - w;
    st.link_abs += std::fabs(wp - w);
    st.link_kept += pol == ref;
  }
}

}  // namespace

void compare_logits(const cache::LayerView& ref, const cache::LayerView& pol,
                    const AttentionCapture& c, int layer, const FidelityOptions& o,
                    ThreadPool& pool, LayerFidelity& out) {
  const int64_t n = c.n_tokens();
  const int group = c.n_heads / c.n_kv_heads, dk = c.head_dim_k;
  const int n_tiles = static_cast<int>((n + kTileTokens - 1) / kTileTokens);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dk));
  const size_t stride = static_cast<size_t>((n + c.page_tokens - 1) / c.page_tokens) *
                        static_cast<size_t>(c.page_tokens);
  const size_t rows_max = static_cast<size_t>(kTileTokens * group);
  const size_t qf = std::max(ref.k_codec->query_floats(), pol.k_codec->query_floats());
  const float* q_all = c.q[static_cast<size_t>(layer)].data();

  std::vector<RowStats> items(static_cast<size_t>(n_tiles) * c.n_kv_heads);
  struct Scratch {
    std::vector<float> q, qp_ref, qp_pol, s_ref, s_pol;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(pool.size()));
  pool.parallel_for(static_cast<int64_t>(items.size()), [&](int64_t task, int thread) {
    Scratch& w = scratch[static_cast<size_t>(thread)];
    w.q.resize(rows_max * dk);
    w.qp_ref.resize(rows_max * qf);
    w.qp_pol.resize(rows_max * qf);
    w.s_ref.resize(rows_max * stride);
    w.s_pol.resize(rows_max * stride);
    const int head = static_cast<int>(task % c.n_kv_heads);
    const int tile = static_cast<int>(task / c.n_kv_heads);
    const int64_t t0 = int64_t{tile} * kTileTokens;
    const int tokens = static_cast<int>(std::min<int64_t>(kTileTokens, n - t0));
    const int rows = tokens * group;
    // Row r = token (t0 + r / group), query head (head * group + r % group).
    for (int r = 0; r < rows; ++r) {
      const float* qr = q_all + ((t0 + r / group) * c.n_heads + head * group + r % group) * dk;
      std::copy(qr, qr + dk, w.q.begin() + static_cast<ptrdiff_t>(r) * dk);
      ref.k_codec->prepare_query(head, qr, w.qp_ref.data() + r * ref.k_codec->query_floats());
      pol.k_codec->prepare_query(head, qr, w.qp_pol.data() + r * pol.k_codec->query_floats());
    }
    const int64_t n_keys = t0 + tokens;
    score_keys(ref, head, w.q.data(), w.qp_ref.data(), rows, n_keys, w.s_ref.data(), stride);
    score_keys(pol, head, w.q.data(), w.qp_pol.data(), rows, n_keys, w.s_pol.data(), stride);
    RowStats& st = items[static_cast<size_t>(task)];
    for (int r = 0; r < rows; ++r) {
      row_stats(w.s_ref.data() + r * stride, w.s_pol.data() + r * stride, t0 + r / group + 1, scale,
                o, st);
    }
  });
  RowStats all;
  for (const RowStats& s : items) all.add(s);
  const double en = static_cast<double>(std::max<int64_t>(all.err_n, 1));
  out.logit_err_mean = all.err_sum / en;
  out.logit_err_std =
      std::sqrt(std::max(0.0, all.err_sq / en - out.logit_err_mean * out.logit_err_mean));
  out.topk_overlap = all.topk_n > 0 ? all.topk_sum / static_cast<double>(all.topk_n) : 1.0;
  out.links = all.links;
  if (all.links > 0) {
    const double ln = static_cast<double>(all.links);
    out.link_weight = all.link_w / ln;
    out.link_rel_change = all.link_rel / all.link_w;
    out.link_abs_rel_change = all.link_abs / all.link_w;
    out.link_kept = all.link_kept / ln;
  }
}

void compare_outputs(const std::vector<float>& out, const std::vector<float>& ref, int dv,
                     LayerFidelity& r) {
  KVPACK_ASSERT(out.size() == ref.size());
  r.out_rel_error = relative_error(out, ref);
  const size_t rows = ref.size() / static_cast<size_t>(dv);
  double sum = 0, mn = 1;
  for (size_t i = 0; i < rows; ++i) {
    const double c = cosine({out.data() + i * dv, static_cast<size_t>(dv)},
                            {ref.data() + i * dv, static_cast<size_t>(dv)});
    sum += c;
    mn = std::min(mn, c);
  }
  r.out_cos_mean = sum / static_cast<double>(rows);
  r.out_cos_min = mn;
}

FidelityReport evaluate_attention(const model::Model& model, const AttentionCapture& c,
                                  const std::vector<format::KVPolicy>& policies,
                                  const FidelityOptions& o, ThreadPool& pool,
                                  const Progress& progress) {
  const double start = now_seconds();
  const model::ModelSpec& hp = model.spec();
  FidelityReport rep;
  rep.model_name = hp.name;
  rep.tokens = c.n_tokens();
  rep.page_tokens = c.page_tokens;
  rep.options = o;
  rep.threads = pool.size();
  PolicyAttention ref(model, c, format::KVPolicy(format::FormatId::f32, format::FormatId::f32),
                      pool);
  std::vector<std::vector<float>> ref_out;
  for (int l = 0; l < c.n_layers; ++l) ref_out.push_back(ref.output(l));

  int64_t done = 0;
  const int64_t total = static_cast<int64_t>(policies.size());
  for (const format::KVPolicy& policy : policies) {
    PolicyFidelity row;
    row.policy = policy;
    row.bytes_per_token = policy_bytes_per_token(hp, policy, c.page_tokens);
    row.bits_per_value = bits_per_value(hp, row.bytes_per_token);
    PolicyAttention both(model, c, policy, pool);
    PolicyAttention konly(model, c, keys_only(policy, c.n_layers), pool);
    PolicyAttention vonly(model, c, values_only(policy, c.n_layers), pool);
    for (int l = 0; l < c.n_layers; ++l) {
      LayerFidelity f;
      f.layer = l;
      f.k = policy.layer(l, c.n_layers).k;
      f.v = policy.layer(l, c.n_layers).v;
      const std::vector<float>& r = ref_out[static_cast<size_t>(l)];
      compare_outputs(both.output(l), r, c.head_dim_v, f);
      f.k_only_rel_error = relative_error(konly.output(l), r);
      f.v_only_rel_error = relative_error(vonly.output(l), r);
      compare_logits(ref.view(l), both.view(l), c, l, o, pool, f);
      row.mean_rel_error += f.out_rel_error / c.n_layers;
      row.k_dominant_layers += f.k_only_rel_error > f.v_only_rel_error;
      row.k_only_sq += f.k_only_rel_error * f.k_only_rel_error;
      row.v_only_sq += f.v_only_rel_error * f.v_only_rel_error;
      row.layers.push_back(f);
    }
    std::vector<int> order(static_cast<size_t>(c.n_layers));
    for (int l = 0; l < c.n_layers; ++l) order[static_cast<size_t>(l)] = l;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return row.layers[static_cast<size_t>(a)].out_rel_error >
             row.layers[static_cast<size_t>(b)].out_rel_error;
    });
    order.resize(std::min<size_t>(order.size(), 3));
    row.most_sensitive = order;
    rep.rows.push_back(std::move(row));
    if (progress) progress(++done, total, policy_label(policy));
  }
  rep.seconds = now_seconds() - start;
  return rep;
}

}  // namespace kvpack::eval
