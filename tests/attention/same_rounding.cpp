#include "same_rounding.h"

#include <algorithm>
#include <cmath>

#include "kernel_expect.h"
#include "kernel_spec.h"

namespace kvpack::testing {
namespace {

constexpr double kU = 0x1p-24;
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

double gamma(double n) {
  return n * kU / (1 - n * kU);
}

// Per-element error of a TurboQuant rotation in f32 relative to the input's 2-norm (two rounds
// of randomized Hadamards and Givens steps; paged_kv.cpp derives the same figure).
double rotation_eps(int d) {
  const int blocks = __builtin_popcount(static_cast<unsigned>(d));
  int log2d = 0;
  while ((1 << log2d) < d) ++log2d;
  return gamma(2.0 * ((2 * blocks - 1) * (log2d + 2) + 2 * (blocks - 1)));
}

bool rotated(format::FormatId id) {
  return turbo_mse_bits(id) > 0;
}

// One query row's logits over all n tokens, in log2 units as the kernels produce them, with a
// bound on each one's error; only [lo, hi) is visible.
struct RowLogits {
  std::vector<double> x;
  std::vector<double> err;
  int64_t lo = 0, hi = 0;
};

RowLogits row_logits(const cache::LayerView& view, const attention::KernelInfo& k, int head,
                     const float* q_scaled, float softcap) {
  const int dk = view.head_dim_k, T = view.page_tokens;
  const int64_t n = view.n_tokens();
  RowLogits r;
  r.x.assign(static_cast<size_t>(n), 0.0);
  r.err.assign(static_cast<size_t>(n), 0.0);
  const SpecQuery sq = spec_query(*view.k_codec, k, head, q_scaled);
  std::vector<double> mag(static_cast<size_t>(n));
  for (size_t p = 0; p < view.page_ids.size(); ++p) {
    spec_logits(*view.k_codec, k, head, view.k_block(p, head), sq, &r.x[p * T], &mag[p * T]);
  }
  for (int t = 0; t < view.tail_tokens; ++t) {  // the f32 tail: plain dot products
    const float* kt = view.k_tail_row(head, t);
    const size_t s = static_cast<size_t>(view.encoded_tokens() + t);
    for (int j = 0; j < dk; ++j) {
      r.x[s] += double(q_scaled[j]) * kt[j];
      mag[s] += std::fabs(double(q_scaled[j]) * kt[j]);
    }
  }
  // The kernels' f32 sums: at most d + 16 roundings, each relative to the terms' magnitudes.
  const double cap = softcap * kLog2e;
  for (int64_t s = 0; s < n; ++s) {
    r.err[s] = 2 * (dk + 16) * kU * mag[s] + 1e-300;
    if (softcap > 0) {  // x = cap tanh(x): |d/dx| <= cap; tanh's own error a few ulps of cap
      r.x[s] = cap * std::tanh(r.x[s]);
      r.err[s] = cap * r.err[s] + 8 * kU * cap;
    }
  }
  return r;
}

// Integer weights of one (page, group) from the row's double weights w: [T] (0 where masked):
// u and whether it could round either way for weights off by a relative eta. Returns c.
double page_weights(const double* w, const double* a, int T, int bits, double eta, int64_t* u,
                    int* either) {
  const double top = std::ldexp(1.0, bits) - 1;
  double wmax = 0;
  float amax = 0;
  for (int t = 0; t < T; ++t) {
    wmax = std::max(wmax, w[t]);
    amax = std::fmax(amax, static_cast<float>(a[t]));
  }
  const float inv_a = amax > 0 ? 1.0f / amax : 0.0f;
  for (int t = 0; t < T; ++t) {
    const double A = static_cast<float>(a[t]) * inv_a;  // exactly the kernel's f32 unit
    const double p = wmax > 0 ? w[t] / wmax * top * A : 0.0;
    u[t] = static_cast<int64_t>(std::nearbyint(p));
    // The kernel's W = w L / max w carries eta from each of w and max w, plus 4 f32 roundings.
    const double slack = p * (2 * eta + 4 * kU);
    either[t] = std::fabs(p - std::floor(p) - 0.5) <= slack;
  }
  return wmax * amax / top;
}

// Adds one page's values for one row: acc (V's basis) += the kernel's sum, allow += what near
// ties may add either way, mag += sum_t w_t |a_t E_tj| (for f32 rounding bounds).
void add_page(const format::Codec& codec, const attention::KernelInfo& v, const ValueBlock& b,
              const double* w, double eta, double* acc, double* allow, double* mag) {
  const int d = codec.head_dim(), T = codec.page_tokens();
  const int g_size = d / b.groups;
  std::vector<int64_t> u(static_cast<size_t>(T));
  std::vector<int> either(static_cast<size_t>(T));
  for (int g = 0; g < b.groups; ++g) {
    const double* a = &b.a[static_cast<size_t>(g) * T];
    const double* m = &b.m[static_cast<size_t>(g) * T];
    const bool integer = v.weight_bits > 0;
    double c = 0;
    if (integer) {
      c = page_weights(w, a, T, v.weight_bits, eta, u.data(), either.data());
    }
    for (int j = g * g_size; j < (g + 1) * g_size; ++j) {
      for (int t = 0; t < T; ++t) {
        const double mt = b.has_min ? m[t] : 0.0;
        mag[j] += w[t] * (std::fabs(a[t] * b.E[t * d + j]) + std::fabs(mt));
        if (!integer) {
          acc[j] += w[t] * (a[t] * b.E[t * d + j] + mt);
          continue;
        }
        // x = a e + (m + 8 a) for q4a's centred integer elements (e = nibble - 8).
        acc[j] += c * b.post * static_cast<double>(u[t] * b.e[t * d + j]) +
                  w[t] * (b.has_min ? mt + 8 * a[t] : 0.0);
        if (either[t]) allow[j] += c * b.post * std::abs(b.e[t * d + j]);
      }
    }
  }
}

// The output rows of one query row: softmax over its visible logits (and sink) in double, values
// through the V kernel's spec, and the per-element tolerance.
// blocks: the head's V pages read once (read_value_block).
void attend_row(const cache::LayerView& view, const attention::KernelInfo& v, int head,
                const std::vector<ValueBlock>& blocks, const RowLogits& r, double sink,
                bool has_sink, double* out, double* tol) {
  const int dv = view.head_dim_v, T = view.page_tokens;
  const int64_t n = view.n_tokens(), enc = view.encoded_tokens();
  double m = has_sink ? sink : -1e300, worst = 0;
  for (int64_t s = r.lo; s < r.hi; ++s) m = std::max(m, r.x[s]);
  std::vector<double> w(static_cast<size_t>(n), 0.0);
  double l = has_sink ? std::exp2(sink - m) : 0.0;
  for (int64_t s = r.lo; s < r.hi; ++s) {
    w[s] = std::exp2(r.x[s] - m);
    l += w[s];
  }
  double max_err = 0;
  for (int64_t s = r.lo; s < r.hi; ++s) max_err = std::max(max_err, r.err[s]);
  for (int64_t s = r.lo; s < r.hi; ++s) {
    // Each weight's relative error: its logit's and the running max's (log2 units), the
    // rounding of x - m, and the exp2 polynomial.
    const double eta =
        kLn2 * (r.err[s] + max_err + kU * std::fabs(r.x[s] - m)) + attention::kExpRelError + 2 * kU;
    worst = std::max(worst, eta);
  }
  const bool rot = rotated(view.v_codec->info().id);
  // acc, allow, page_mag: the pages, in V's basis; tail, tail_mag: the f32 tail.
  std::vector<double> acc(static_cast<size_t>(dv), 0.0), allow(acc), page_mag(acc), tail(acc),
      tail_mag(acc);
  for (size_t p = 0; p < view.page_ids.size(); ++p) {
    if (static_cast<int64_t>(p + 1) * T <= r.lo || static_cast<int64_t>(p) * T >= r.hi) continue;
    add_page(*view.v_codec, v, blocks[p], &w[p * T], worst, acc.data(), allow.data(),
             page_mag.data());
  }
  for (int t = 0; t < view.tail_tokens; ++t) {
    const float* vt = view.v_tail_row(head, t);
    for (int j = 0; j < dv; ++j) {
      tail[j] += w[enc + t] * vt[j];
      tail_mag[j] += w[enc + t] * std::fabs(vt[j]);
    }
  }
  // Turbo sums in the rotated basis and finish() rotates back once (f32): an error vector there
  // is at most its 2-norm on every element.
  std::vector<float> rotated_acc(static_cast<size_t>(dv)), back(static_cast<size_t>(dv));
  for (int j = 0; j < dv; ++j) rotated_acc[j] = static_cast<float>(acc[j] / l);
  if (rot) view.v_codec->finish(head, rotated_acc.data(), 1, back.data());
  double allow2 = 0, mag2 = 0;
  for (int j = 0; j < dv; ++j) allow2 += allow[j] * allow[j], mag2 += page_mag[j] * page_mag[j];
  // Weights off by factors within exp(+-worst) stay, once normalised, within expm1(2 worst).
  const double spread = std::expm1(2 * worst);
  const double acc_gamma = 2 * gamma(static_cast<double>(n) + n / 16.0 + 64);
  const double f = spread + acc_gamma + kU;
  for (int j = 0; j < dv; ++j) {
    out[j] = (rot ? static_cast<double>(back[j]) : acc[j] / l) + tail[j] / l;
    tol[j] = f * tail_mag[j] / l + kU * std::fabs(out[j]) + 1e-30;
    if (rot) {
      tol[j] += (f + 2 * rotation_eps(dv)) * std::sqrt(mag2) / l + std::sqrt(allow2) / l;
    } else {
      tol[j] += f * page_mag[j] / l + allow[j] / l;
    }
  }
}

}  // namespace

Expectation same_rounding(const cache::LayerView& view, const float* q, int n_new, int n_q_heads,
                          const attention::Params& params) {
  const attention::KernelInfo k = expected_kernel(*view.k_codec, params);
  const attention::KernelInfo v = expected_kernel(*view.v_codec, params);
  const int dk = view.head_dim_k, dv = view.head_dim_v;
  const int group = n_q_heads / view.n_kv_heads;
  const double scale = params.scale != 0.0f ? params.scale : 1.0 / std::sqrt(double(dk));
  // The kernels' query: q times this f32 factor (call.cpp), in log2 units unless capped.
  const float fold =
      static_cast<float>(params.softcap > 0 ? scale / params.softcap : scale * kLog2e);
  Expectation e;
  e.value.resize(static_cast<size_t>(n_new) * n_q_heads * dv);
  e.tol.resize(e.value.size());
  std::vector<float> qs(static_cast<size_t>(dk));
  for (int h = 0; h < view.n_kv_heads; ++h) {
    std::vector<ValueBlock> blocks;
    for (size_t p = 0; p < view.page_ids.size(); ++p) {
      blocks.push_back(read_value_block(*view.v_codec, h, view.v_block(p, h)));
    }
    for (int t = 0; t < n_new; ++t) {
      const int64_t pos = view.n_tokens() - n_new + t;
      for (int i = h * group; i < (h + 1) * group; ++i) {
        const float* qi = q + (static_cast<size_t>(t) * n_q_heads + i) * dk;
        for (int j = 0; j < dk; ++j) qs[j] = qi[j] * fold;
        RowLogits r = row_logits(view, k, h, qs.data(), params.softcap);
        r.hi = pos + 1;
        r.lo = params.window > 0 ? std::max<int64_t>(0, pos - params.window + 1) : 0;
        const bool has_sink = params.sinks != nullptr;
        const double sink = has_sink ? params.sinks[i] * kLog2e : 0.0;
        const size_t at = (static_cast<size_t>(t) * n_q_heads + i) * dv;
        attend_row(view, v, h, blocks, r, sink, has_sink, &e.value[at], &e.tol[at]);
      }
    }
  }
  return e;
}

}  // namespace kvpack::testing
