// A Llama FFN block, y = W_down (silu(W_gate h) * (W_up h)) with h = rms_norm(x) * w_norm, run
// with the optimized kernels and with a plain scalar version in double (exact activations), for
// F16, Q8_0 and Q4_0 weights. The tolerance is derived per output from the weight types, step by
// step, as a forward-pass test would do it (docs/weights.md, "Tolerances"):
//  - rms_norm: (n/2 + 8) u relative per element;
//  - a matvec: the input error carried through |W| (sum |w_j| dx_j), the kernel's f32 rounding
//    (gamma(cols + 2) * sum |terms|) and, for Q8_0/Q4_0 on the int8 path, the q8_0 activation
//    bound (q8_activation_error_bound);
//  - swiglu: |silu'| <= 1.1, so da <= 1.1 |dg| |u| + |silu(g)| du + 1.1 |dg| du + 10 ulp.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "base/rng.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/ops.h"
#include "model/quant_ref.h"

namespace kvpack::model {
namespace {

constexpr double kU = 0x1p-24;

double gamma(int64_t k) {
  return k * kU / (1 - k * kU);
}

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
  std::vector<float> deq;  // [rows][cols] dequantized, for the scalar path
};

Matrix make_matrix(GgmlType t, int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> f(rows * cols);
  for (auto& v : f) v = static_cast<float>(rng.normal() / std::sqrt(static_cast<double>(cols)));
  Matrix m;
  m.w.name = "ffn." + std::to_string(seed);
  m.w.type = t;
  m.w.rows = rows;
  m.w.cols = cols;
  m.w.row_bytes = weight_row_bytes(t, cols);
  m.bytes.resize(m.w.bytes());
  m.deq.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row_ref(t, f.data() + r * cols, m.bytes.data() + r * m.w.row_bytes, cols);
    dequantize_row_ref(t, m.bytes.data() + r * m.w.row_bytes, m.deq.data() + r * cols, cols);
  }
  m.w.data = m.bytes.data();
  return m;
}

// Exact product in double with the dequantized weights.
std::vector<double> matvec_exact(const Matrix& m, const std::vector<double>& x) {
  std::vector<double> y(m.w.rows, 0.0);
  for (int64_t r = 0; r < m.w.rows; ++r) {
    for (int64_t j = 0; j < m.w.cols; ++j) y[r] += m.deq[r * m.w.cols + j] * x[j];
  }
  return y;
}

// Error bound of the optimized y = W x_opt against W x_exact, given |x_opt - x_exact| <= dx.
std::vector<double> matvec_bound(const Matrix& m, const std::vector<float>& x_opt,
                                 const std::vector<double>& dx) {
  const bool int8 = m.w.type == GgmlType::Q8_0 || m.w.type == GgmlType::Q4_0;
  std::vector<BlockQ8_0> xq(m.w.cols / 32);
  if (int8) quantize_row_q8_0_ref(x_opt.data(), xq.data(), m.w.cols);
  std::vector<double> b(m.w.rows);
  for (int64_t r = 0; r < m.w.rows; ++r) {
    double carried = 0.0;
    for (int64_t j = 0; j < m.w.cols; ++j) carried += std::fabs(m.deq[r * m.w.cols + j]) * dx[j];
    double abs_sum = 0.0;
    if (int8) {
      vec_dot_q8_ref(m.w.type, m.w.row(r), xq.data(), m.w.cols, &abs_sum);
    } else {
      vec_dot_f32_ref(m.w.type, m.w.row(r), x_opt.data(), m.w.cols, &abs_sum);
    }
    b[r] = carried + gamma(m.w.cols + 2) * abs_sum +
           q8_activation_error_bound(m.w.type, m.w.row(r), x_opt.data(), m.w.cols);
  }
  return b;
}

TEST(FfnBlock, OptimizedWithinDerivedBoundOfExact) {
  const int64_t n_embd = 256, n_ff = 704;
  ThreadPool pool(2);
  for (GgmlType t : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    const Matrix gate = make_matrix(t, n_ff, n_embd, 1), up = make_matrix(t, n_ff, n_embd, 2);
    const Matrix down = make_matrix(t, n_embd, n_ff, 3);
    Rng rng(4);
    std::vector<float> x(n_embd), w_norm(n_embd);
    for (auto& v : x) v = static_cast<float>(rng.normal() * 3);
    for (auto& v : w_norm) v = static_cast<float>(1 + 0.1 * rng.normal());
    const float eps = 1e-5f;

    // Optimized.
    std::vector<float> h(n_embd), g(n_ff), u(n_ff), a(n_ff), y(n_embd);
    rms_norm(x.data(), w_norm.data(), eps, n_embd, h.data());
    matvec(gate.w, h.data(), g.data(), pool);
    matvec(up.w, h.data(), u.data(), pool);
    swiglu(g.data(), u.data(), n_ff, a.data());
    matvec(down.w, a.data(), y.data(), pool);

    // Scalar, exact activations.
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n_embd + eps);
    std::vector<double> he(n_embd), dh(n_embd);
    for (int64_t j = 0; j < n_embd; ++j) {
      he[j] = x[j] * scale * w_norm[j];
      dh[j] = (n_embd / 2.0 + 8) * kU * std::fabs(he[j]);
    }
    const std::vector<double> ge = matvec_exact(gate, he), ue = matvec_exact(up, he);
    const std::vector<double> dg = matvec_bound(gate, h, dh), du = matvec_bound(up, h, dh);
    std::vector<double> ae(n_ff), da(n_ff);
    for (int64_t j = 0; j < n_ff; ++j) {
      const double s = ge[j] / (1 + std::exp(-ge[j]));
      ae[j] = s * ue[j];
      da[j] = 1.1 * dg[j] * std::fabs(ue[j]) + std::fabs(s) * du[j] + 1.1 * dg[j] * du[j] +
              10 * 2 * kU * std::fabs(ae[j]);
    }
    const std::vector<double> ye = matvec_exact(down, ae);
    const std::vector<double> dy = matvec_bound(down, a, da);

    double worst = 0;
    for (int64_t r = 0; r < n_embd; ++r) {
      ASSERT_LE(std::fabs(y[r] - ye[r]), dy[r] * 1.01) << ggml_type_name(uint32_t(t)) << " " << r;
      worst = std::max(worst, std::fabs(y[r] - ye[r]) / dy[r]);
    }
    RecordProperty(ggml_type_name(static_cast<uint32_t>(t)) + "_worst_error_over_bound",
                   std::to_string(worst));
  }
}

}  // namespace
}  // namespace kvpack::model
