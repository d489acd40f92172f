#include "scalar_llama.h"

#include <cmath>
#include <stdexcept>

#include "model/quant_ref.h"

namespace kvpack::eval::testing {
namespace {

using Vec = std::vector<double>;

// A matrix dequantized to double: (rows, cols).
struct Mat {
  int64_t rows, cols;
  Vec a;
  explicit Mat(const model::WeightMatrix& w) : rows(w.rows), cols(w.cols), a(rows * cols) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      model::dequantize_row_ref(w.type, w.row(r), row.data(), cols);
      for (int64_t j = 0; j < cols; ++j) a[static_cast<size_t>(r * cols + j)] = row[j];
    }
  }
  Vec operator*(const Vec& x) const {
    Vec y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) y[r] += a[static_cast<size_t>(r * cols + j)] * x[j];
    }
    return y;
  }
};

Vec rms_norm(const Vec& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// Pair (2i, 2i+1) of each head turns by pos * base^(-2i / n_dims).
void rope(Vec& x, int head_dim, int n_dims, double base, int64_t pos) {
  for (size_t h = 0; h < x.size() / static_cast<size_t>(head_dim); ++h) {
    double* v = x.data() + h * head_dim;
    for (int i = 0; i < n_dims / 2; ++i) {
      const double theta = static_cast<double>(pos) * std::pow(base, -2.0 * i / n_dims);
      const double x0 = v[2 * i], x1 = v[2 * i + 1];
      v[2 * i] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[2 * i + 1] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

}  // namespace

std::vector<std::vector<double>> scalar_logits(const model::Model& m,
                                               std::span<const int32_t> tokens) {
  const model::ModelSpec& hp = m.spec();
  const model::Weights& w = m.weights();
  if (hp.layers[0].rope.scaling != model::RopeScaling::none ||
      !hp.layers[0].rope.freq_factors.empty() ||
      hp.layers[0].rope.ordering != model::RopeOrdering::interleaved) {
    throw std::runtime_error("scalar_logits: only plain interleaved RoPE");
  }
  const int dk = hp.head_dim_k, dv = hp.head_dim_v, group = hp.n_heads() / hp.n_kv_heads();
  const Mat embd(w.token_embd), out(w.output);
  struct Layer {
    Mat q, k, v, o, gate, up, down;
  };
  std::vector<Layer> layers;
  for (const auto& l : w.layers) {
    layers.push_back({Mat(l.wq), Mat(l.wk), Mat(l.wv), Mat(l.wo), Mat(l.ffn_gate), Mat(l.ffn_up),
                      Mat(l.ffn_down)});
  }
  // keys[l][t], values[l][t]: (n_kv_heads * dim) per token.
  std::vector<std::vector<Vec>> keys(layers.size()), values(layers.size());
  std::vector<std::vector<double>> logits;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    Vec x(embd.a.begin() + tokens[pos] * embd.cols, embd.a.begin() + (tokens[pos] + 1) * embd.cols);
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      const Vec h = rms_norm(x, w.layers[l].attn_norm.w, hp.norm_eps);
      Vec q = L.q * h, k = L.k * h;
      rope(q, dk, hp.layers[0].rope.n_dims, hp.layers[0].rope.freq_base, static_cast<int64_t>(pos));
      rope(k, dk, hp.layers[0].rope.n_dims, hp.layers[0].rope.freq_base, static_cast<int64_t>(pos));
      keys[l].push_back(k);
      values[l].push_back(L.v * h);
      // softmax(q k^T / sqrt(dk)) v per query head, over positions 0..pos.
      Vec att(static_cast<size_t>(hp.n_heads() * dv), 0.0), s(pos + 1);
      for (int i = 0; i < hp.n_heads(); ++i) {
        const size_t ko = static_cast<size_t>(i / group) * dk,
                     vo = static_cast<size_t>(i / group) * dv;
        double mx = -1e300, sum = 0;
        for (size_t t = 0; t <= pos; ++t) {
          double dot = 0;
          for (int j = 0; j < dk; ++j)
            dot += q[static_cast<size_t>(i * dk + j)] * keys[l][t][ko + j];
          s[t] = dot / std::sqrt(static_cast<double>(dk));
          mx = std::max(mx, s[t]);
        }
        for (size_t t = 0; t <= pos; ++t) sum += s[t] = std::exp(s[t] - mx);
        for (size_t t = 0; t <= pos; ++t) {
          for (int j = 0; j < dv; ++j)
            att[static_cast<size_t>(i * dv + j)] += s[t] / sum * values[l][t][vo + j];
        }
      }
      const Vec a = L.o * att;
      for (size_t j = 0; j < x.size(); ++j) x[j] += a[j];
      const Vec h2 = rms_norm(x, w.layers[l].ffn_norm.w, hp.norm_eps);
      Vec g = L.gate * h2;
      const Vec u = L.up * h2;
      for (size_t j = 0; j < g.size(); ++j) g[j] = g[j] / (1 + std::exp(-g[j])) * u[j];
      const Vec d = L.down * g;
      for (size_t j = 0; j < x.size(); ++j) x[j] += d[j];
    }
    logits.push_back(out * rms_norm(x, w.output_norm.w, hp.norm_eps));
  }
  return logits;
}

double scalar_perplexity(const model::Model& model, std::span<const int32_t> tokens,
                         int64_t context, int64_t chunks, int32_t bos) {
  double nll = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * context, tokens.begin() + (c + 1) * context);
    if (bos >= 0) chunk[0] = bos;
    const int64_t first = context / 2;
    // Only positions up to c-2 predict a scored token.
    const auto logits = scalar_logits(model, std::span<const int32_t>(chunk).first(context - 1));
    for (int64_t p = first; p <= context - 2; ++p) {
      const Vec& l = logits[static_cast<size_t>(p)];
      double mx = -1e300, sum = 0;
      for (double v : l) mx = std::max(mx, v);
      for (double v : l) sum += std::exp(v - mx);
      nll += mx + std::log(sum) - l[static_cast<size_t>(chunk[static_cast<size_t>(p + 1)])];
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

}  // namespace kvpack::eval::testing
