// The scalar reference: decode every page with the codecs' reference decode(), then compute
// attention in double exactly as the public header defines it. Readable first; O(context)
// memory is fine here.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/validate.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

// All tokens of one KV head decoded to f32: [n_tokens][dim].
std::vector<float> decode_head(const cache::LayerView& view, int head, bool keys) {
  const format::Codec& codec = keys ? *view.k_codec : *view.v_codec;
  const int dim = keys ? view.head_dim_k : view.head_dim_v;
  const int64_t n = view.n_tokens();
  std::vector<float> out(static_cast<size_t>(n) * dim);
  const int pt = view.page_tokens;
  // Tokens before view.first_token() were released: they stay zero, and validate_call made sure
  // no query's window reaches them.
  for (size_t p = 0; p < view.page_ids.size(); ++p) {
    const uint8_t* block = keys ? view.k_block(p, head) : view.v_block(p, head);
    codec.decode(head, block, pt,
                 out.data() + (view.first_page + p) * pt * static_cast<size_t>(dim));
  }
  const int64_t enc = view.encoded_tokens();
  for (int t = 0; t < view.tail_tokens; ++t) {
    const float* row = keys ? view.k_tail_row(head, t) : view.v_tail_row(head, t);
    std::copy(row, row + dim, out.data() + (enc + t) * dim);
  }
  return out;
}

}  // namespace

void reference(const cache::LayerView& view, const float* q, int n_new, int n_q_heads, float* out,
               const Params& params) {
  detail::validate_call(view, n_new, n_q_heads, params);
  const int dk = view.head_dim_k;
  const int dv = view.head_dim_v;
  const int group = n_q_heads / view.n_kv_heads;
  const int64_t n = view.n_tokens();
  const double scale = detail::logit_scale(view, params);
  std::vector<double> w(static_cast<size_t>(n));
  std::vector<double> acc(static_cast<size_t>(dv));
  for (int h = 0; h < view.n_kv_heads; ++h) {
    const std::vector<float> k = decode_head(view, h, true);
    const std::vector<float> v = decode_head(view, h, false);
    for (int t = 0; t < n_new; ++t) {
      const int64_t pos = n - n_new + t;
      const int64_t lo = params.window > 0 ? std::max<int64_t>(0, pos - params.window + 1) : 0;
      for (int i = h * group; i < (h + 1) * group; ++i) {
        const float* qi = q + (static_cast<size_t>(t) * n_q_heads + i) * dk;
        double m = params.sinks ? params.sinks[i] : -std::numeric_limits<double>::infinity();
        for (int64_t s = lo; s <= pos; ++s) {
          double dot = 0;
          for (int j = 0; j < dk; ++j) dot += static_cast<double>(qi[j]) * k[s * dk + j];
          double logit = dot * scale;
          if (params.softcap > 0) logit = params.softcap * std::tanh(logit / params.softcap);
          w[s] = logit;
          m = std::max(m, logit);
        }
        double sum = params.sinks ? std::exp(params.sinks[i] - m) : 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t s = lo; s <= pos; ++s) {
          const double e = std::exp(w[s] - m);
          sum += e;
          for (int j = 0; j < dv; ++j) acc[j] += e * v[s * dv + j];
        }
        float* oi = out + (static_cast<size_t>(t) * n_q_heads + i) * dv;
        for (int j = 0; j < dv; ++j) oi[j] = static_cast<float>(acc[j] / sum);
      }
    }
  }
}

}  // namespace kvpack::attention
