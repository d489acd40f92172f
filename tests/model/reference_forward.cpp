#include "reference_forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/quant_ref.h"

namespace kvpack::model::testing {
namespace {

constexpr double kU = 0x1p-24;  // f32 unit roundoff
double gamma(double k) {
  return k * kU / (1 - k * kU);
}

std::vector<double> values(const Bounded& b) {
  return b.v;
}

}  // namespace

ReferenceLlama::ReferenceLlama(const GgufFile& f, ReferenceOptions options) : opt_(options) {
  const std::string a = f.require_string("general.architecture") + ".";
  n_layers_ = static_cast<int>(f.require_int(a + "block_count"));
  n_embd_ = static_cast<int>(f.require_int(a + "embedding_length"));
  n_heads_ = static_cast<int>(f.require_int(a + "attention.head_count"));
  n_kv_heads_ = static_cast<int>(f.get_int(a + "attention.head_count_kv").value_or(n_heads_));
  head_dim_ = static_cast<int>(f.get_int(a + "attention.key_length").value_or(n_embd_ / n_heads_));
  eps_ = f.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5);
  rope_base_ = f.get_float(a + "rope.freq_base").value_or(10000.0);
  for (const GgufTensor& t : f.tensors()) {
    Mat m{WeightMatrix::from_tensor(t), {}};
    m.a.resize(static_cast<size_t>(m.w.rows * m.w.cols));
    std::vector<float> row(static_cast<size_t>(m.w.cols));
    for (int64_t r = 0; r < m.w.rows; ++r) {
      dequantize_row_ref(m.w.type, m.w.row(r), row.data(), m.w.cols);
      std::copy(row.begin(), row.end(), m.a.begin() + r * m.w.cols);
    }
    mats_.emplace_back(t.name, std::move(m));
  }
  if (f.find_tensor("rope_freqs.weight")) rope_factors_ = mat("rope_freqs.weight").a;
  n_vocab_ = static_cast<int>(mat("token_embd.weight").w.rows);
  k_.resize(static_cast<size_t>(n_layers_));
  v_.resize(static_cast<size_t>(n_layers_));
}

const ReferenceLlama::Mat& ReferenceLlama::mat(const std::string& tensor) const {
  for (const auto& [name, m] : mats_) {
    if (name == tensor) return m;
  }
  if (tensor == "output.weight") return mat("token_embd.weight");  // tied embeddings
  throw std::runtime_error("reference: no tensor " + tensor);
}

// The embedding row: dequantization is exact in f32.
Bounded ReferenceLlama::embed(int32_t token) const {
  const Mat& m = mat("token_embd.weight");
  const auto row = m.a.begin() + int64_t{token} * n_embd_;
  return {std::vector<double>(row, row + n_embd_), std::vector<double>(n_embd_, 0.0)};
}

// h = x / sqrt(mean(x^2) + eps) * w; the kernel is within (n/2 + 8) u per element.
Bounded ReferenceLlama::rms_norm(const std::string& tensor, Row x) const {
  const std::vector<double>& w = mat(tensor).a;
  const size_t n = x.size();
  double ss = 0;
  for (double v : x) ss += v * v;
  const double rms = std::sqrt(ss / n + eps_);
  Bounded h{std::vector<double>(n), std::vector<double>(n)};
  for (size_t j = 0; j < n; ++j) {
    h.v[j] = x[j] / rms * w[j];
    h.e[j] = (n / 2.0 + 8) * kU * std::fabs(h.v[j]);
  }
  return h;
}

// y = W x. The kernel's error per row: f32 summation, gamma(cols + 4) of the absolute terms,
// and on the int8 path quantizing x to its q8_0 / q8_K blocks (q8_activation_error_bound).
Bounded ReferenceLlama::project(const std::string& tensor, Row x) const {
  const Mat& m = mat(tensor);
  const int64_t rows = m.w.rows, cols = m.w.cols;
  const ActType act = weight_traits(m.w.type).act;
  const bool int8 = opt_.dot == QuantDot::kInt8 && act != ActType::kF32;
  const std::vector<float> xf(x.begin(), x.end());  // what the kernel multiplies
  std::vector<uint8_t> xq(int8 ? cols / act_block_size(act) * act_block_bytes(act) : 0);
  if (int8) quantize_row_act_ref(act, xf.data(), xq.data(), cols);
  Bounded y{std::vector<double>(static_cast<size_t>(rows)),
            std::vector<double>(static_cast<size_t>(rows))};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) y.v[r] += m.a[r * cols + j] * x[j];
    double abs_sum = 0;
    if (int8) {
      vec_dot_act_ref(m.w.type, m.w.row(r), xq.data(), cols, &abs_sum);
    } else {
      vec_dot_f32_ref(m.w.type, m.w.row(r), xf.data(), cols, &abs_sum);
    }
    y.e[r] = gamma(cols + 4) * abs_sum +
             (int8 ? q8_activation_error_bound(m.w.type, m.w.row(r), xf.data(), cols) : 0.0);
  }
  return y;
}

// Pair (2i, 2i+1) of every head turns by pos * base^(-2i/d) / factor_i. The kernel computes in
// double and rounds once.
Bounded ReferenceLlama::rope(Row x, int64_t pos) const {
  Bounded y{std::vector<double>(x.begin(), x.end()), std::vector<double>(x.size())};
  for (size_t h = 0; h < x.size() / head_dim_; ++h) {
    double* v = y.v.data() + h * head_dim_;
    for (int i = 0; i < head_dim_ / 2; ++i) {
      double theta = pos * std::pow(rope_base_, -2.0 * i / head_dim_);
      if (!rope_factors_.empty()) theta /= rope_factors_[static_cast<size_t>(i)];
      const double x0 = v[2 * i], x1 = v[2 * i + 1];
      v[2 * i] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[2 * i + 1] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
  for (size_t j = 0; j < x.size(); ++j) y.e[j] = kU * std::fabs(y.v[j]) + 1e-12 * std::fabs(x[j]);
  return y;
}

// Query head i reads KV head i / (n_heads / n_kv_heads). The bound follows the attention tests:
// a logit off by D (f32 dot products, the stored format's rounding of K, exp's argument) moves
// each normalised weight by a factor within exp(+-2D); the accumulators round once per token
// (and per 16-token rescale); V's stored rounding passes through the weights.
Bounded ReferenceLlama::attention(Row q, std::span<const std::vector<double>> keys,
                                  std::span<const std::vector<double>> values) const {
  const size_t n = keys.size(), d = static_cast<size_t>(head_dim_);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const int group = n_heads_ / n_kv_heads_;
  const double acc = 2 * gamma(n + n / 16.0 + 64) + kU;
  Bounded out{std::vector<double>(n_heads_ * d), std::vector<double>(n_heads_ * d)};
  std::vector<double> s(n), p(n);
  for (int i = 0; i < n_heads_; ++i) {
    const size_t qo = i * d, ko = static_cast<size_t>(i / group) * d;
    double m = -1e300, worst = 0;
    for (size_t t = 0; t < n; ++t) {
      double dot = 0, abs = 0;
      for (size_t j = 0; j < d; ++j) {
        dot += q[qo + j] * keys[t][ko + j];
        abs += std::fabs(q[qo + j] * keys[t][ko + j]);
      }
      s[t] = dot * scale;
      worst = std::max(worst, (gamma(d + 2) + opt_.kv_rounding) * abs * scale);
      m = std::max(m, s[t]);
    }
    double sum = 0;
    for (size_t t = 0; t < n; ++t) {
      worst = std::max(worst, std::fabs(s[t] - m) * kU + 2 * kU);
      p[t] = std::exp(s[t] - m);
      sum += p[t];
    }
    const double spread = std::expm1(2 * worst);
    for (size_t j = 0; j < d; ++j) {
      double o = 0, mass = 0;  // mass: sum_t p_t |v_tj|
      for (size_t t = 0; t < n; ++t) {
        o += p[t] / sum * values[t][ko + j];
        mass += p[t] / sum * std::fabs(values[t][ko + j]);
      }
      out.v[qo + j] = o;
      out.e[qo + j] = (spread + acc + opt_.kv_rounding) * mass + 1e-30;
    }
  }
  return out;
}

// silu(gate) * up; the kernel is within 10 ulp (docs/weights.md).
Bounded ReferenceLlama::swiglu(Row gate, Row up) const {
  Bounded a{std::vector<double>(gate.size()), std::vector<double>(gate.size())};
  for (size_t j = 0; j < gate.size(); ++j) {
    a.v[j] = gate[j] / (1 + std::exp(-gate[j])) * up[j];
    a.e[j] = 20 * kU * std::fabs(a.v[j]) + 1e-36;
  }
  return a;
}

// A residual connection: one rounding.
Bounded ReferenceLlama::add(Row x, Row y) const {
  Bounded z{std::vector<double>(x.size()), std::vector<double>(x.size())};
  for (size_t j = 0; j < x.size(); ++j) {
    z.v[j] = x[j] + y[j];
    z.e[j] = kU * std::fabs(z.v[j]);
  }
  return z;
}

std::vector<double> ReferenceLlama::step(int32_t token) {
  std::vector<double> x = values(embed(token));
  for (int l = 0; l < n_layers_; ++l) {
    const auto name = [l](const char* what) { return fmt::format("blk.{}.{}.weight", l, what); };
    auto& keys = k_[static_cast<size_t>(l)];
    auto& vals = v_[static_cast<size_t>(l)];
    // x = x + W_o Attention(RoPE(W_q h), RoPE(W_k h), W_v h),   h = RMSNorm(x)
    std::vector<double> h = values(rms_norm(name("attn_norm"), x));
    const std::vector<double> q = values(rope(values(project(name("attn_q"), h)), pos_));
    keys.push_back(values(rope(values(project(name("attn_k"), h)), pos_)));
    vals.push_back(values(project(name("attn_v"), h)));
    x = values(add(x, values(project(name("attn_output"), values(attention(q, keys, vals))))));
    // x = x + W_down (SiLU(W_gate h) * W_up h),                 h = RMSNorm(x)
    h = values(rms_norm(name("ffn_norm"), x));
    const std::vector<double> act =
        values(swiglu(values(project(name("ffn_gate"), h)), values(project(name("ffn_up"), h))));
    x = values(add(x, values(project(name("ffn_down"), act))));
  }
  ++pos_;
  return values(project("output.weight", values(rms_norm("output_norm.weight", x))));
}

}  // namespace kvpack::model::testing
