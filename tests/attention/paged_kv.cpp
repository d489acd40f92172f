#include "paged_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "base/half.h"
#include "base/rng.h"
#include "kernel_expect.h"

namespace kvpack::testing {
namespace {

constexpr double kU = 0x1p-24;  // f32 unit roundoff

double gamma(double n) {
  return n * kU / (1 - n * kU);
}

// Fills [n][dim] rows of one head.
std::vector<float> gaussian(size_t count, Rng& rng, double sigma = 1.0) {
  std::vector<float> x(count);
  for (auto& v : x) v = static_cast<float>(rng.normal() * sigma);
  return x;
}

std::vector<float> unit_direction(int dim, Rng& rng) {
  std::vector<float> b = gaussian(static_cast<size_t>(dim), rng);
  double n = 0;
  for (float v : b) n += static_cast<double>(v) * v;
  for (auto& v : b) v = static_cast<float>(v / std::sqrt(n));
  return b;
}

// One head's decoded tokens [n_tokens][dim], as the reference sees them.
std::vector<float> decoded(const cache::LayerView& view, int head, bool keys) {
  const format::Codec& codec = keys ? *view.k_codec : *view.v_codec;
  const int dim = codec.head_dim();
  std::vector<float> out(static_cast<size_t>(view.n_tokens()) * dim);
  for (size_t p = 0; p < view.page_ids.size(); ++p) {
    codec.decode(head, keys ? view.k_block(p, head) : view.v_block(p, head), view.page_tokens,
                 out.data() + p * view.page_tokens * dim);
  }
  for (int t = 0; t < view.tail_tokens; ++t) {
    const float* row = keys ? view.k_tail_row(head, t) : view.v_tail_row(head, t);
    std::copy(row, row + dim, out.data() + (view.encoded_tokens() + t) * dim);
  }
  return out;
}

}  // namespace

std::string data_name(Data d) {
  switch (d) {
    case Data::gaussian:
      return "gaussian";
    case Data::outliers:
      return "outliers";
    case Data::sink:
      return "sink";
  }
  return "?";
}

PagedKv::PagedKv(format::FormatId k, format::FormatId v, const KvShape& s, Data data, uint64_t seed)
    : shape_(s), data_(data) {
  KVPACK_ASSERT((s.n_tokens - s.tail_tokens) % s.page_tokens == 0, "pages must be full");
  Rng rng(seed);
  bias_ = unit_direction(s.head_dim_k, rng);
  k_codec_ = format::make_codec(k, {format::Role::K, s.head_dim_k, s.page_tokens, s.n_kv_heads,
                                    format::layer_seed(0, format::Role::K)});
  v_codec_ = format::make_codec(v, {format::Role::V, s.head_dim_v, s.page_tokens, s.n_kv_heads,
                                    format::layer_seed(0, format::Role::V)});
  const int n_pages = (s.n_tokens - s.tail_tokens) / s.page_tokens;
  const int pool_pages = n_pages + 3;  // unused pages hold NaN patterns: reading one shows
  k_pool_ = make_aligned<uint8_t>(k_codec_->slice_bytes() * pool_pages);
  v_pool_ = make_aligned<uint8_t>(v_codec_->slice_bytes() * pool_pages);
  std::memset(k_pool_.get(), 0xff, k_codec_->slice_bytes() * pool_pages);
  std::memset(v_pool_.get(), 0xff, v_codec_->slice_bytes() * pool_pages);
  std::vector<uint32_t> ids(static_cast<size_t>(pool_pages));
  for (int i = 0; i < pool_pages; ++i) ids[i] = static_cast<uint32_t>(i);
  for (int i = pool_pages - 1; i > 0; --i) std::swap(ids[i], ids[rng.below(i + 1)]);
  page_ids_.assign(ids.begin(), ids.begin() + n_pages);
  const size_t cap = static_cast<size_t>(s.tail_tokens) + 5;
  k_tail_.assign(cap * s.n_kv_heads * s.head_dim_k, std::numeric_limits<float>::quiet_NaN());
  v_tail_.assign(cap * s.n_kv_heads * s.head_dim_v, std::numeric_limits<float>::quiet_NaN());
  for (int h = 0; h < s.n_kv_heads; ++h) {
    std::vector<float> keys = gaussian(static_cast<size_t>(s.n_tokens) * s.head_dim_k, rng);
    std::vector<float> vals = gaussian(static_cast<size_t>(s.n_tokens) * s.head_dim_v, rng);
    if (data == Data::outliers) {
      for (int o = 0; o < 3; ++o) {
        const int ch = static_cast<int>(rng.below(s.head_dim_k));
        const float f = static_cast<float>(10 + 20 * rng.uniform());
        for (int t = 0; t < s.n_tokens; ++t) keys[t * s.head_dim_k + ch] *= f;
      }
    } else if (data == Data::sink) {
      for (int j = 0; j < s.head_dim_k; ++j) keys[j] = 40.0f * bias_[j];
      for (int j = 0; j < s.head_dim_v; ++j) vals[j] *= 10.0f;
    }
    for (int t = 0; t < s.n_tokens; ++t) {
      double n2 = 0;
      for (int j = 0; j < s.head_dim_k; ++j)
        n2 += double(keys[t * s.head_dim_k + j]) * keys[t * s.head_dim_k + j];
      max_key_norm_ = std::max(max_key_norm_, std::sqrt(n2));
    }
    for (int p = 0; p < n_pages; ++p) {
      const size_t t0 = static_cast<size_t>(p) * s.page_tokens;
      k_codec_->encode(
          h, keys.data() + t0 * s.head_dim_k, s.page_tokens,
          k_pool_.get() + page_ids_[p] * k_codec_->slice_bytes() + h * k_codec_->head_bytes());
      v_codec_->encode(
          h, vals.data() + t0 * s.head_dim_v, s.page_tokens,
          v_pool_.get() + page_ids_[p] * v_codec_->slice_bytes() + h * v_codec_->head_bytes());
    }
    for (int t = 0; t < s.tail_tokens; ++t) {
      const size_t src = static_cast<size_t>(n_pages) * s.page_tokens + t;
      std::copy_n(keys.data() + src * s.head_dim_k, s.head_dim_k,
                  k_tail_.data() + (h * cap + t) * s.head_dim_k);
      std::copy_n(vals.data() + src * s.head_dim_v, s.head_dim_v,
                  v_tail_.data() + (h * cap + t) * s.head_dim_v);
    }
  }
  view_.k_codec = k_codec_.get();
  view_.v_codec = v_codec_.get();
  view_.k_pages = k_pool_.get();
  view_.v_pages = v_pool_.get();
  view_.k_page_stride = k_codec_->slice_bytes();
  view_.v_page_stride = v_codec_->slice_bytes();
  view_.page_ids = page_ids_;
  view_.k_tail = k_tail_.data();
  view_.v_tail = v_tail_.data();
  view_.tail_tokens = s.tail_tokens;
  view_.tail_head_stride = cap;
  view_.n_kv_heads = s.n_kv_heads;
  view_.head_dim_k = s.head_dim_k;
  view_.head_dim_v = s.head_dim_v;
  view_.page_tokens = s.page_tokens;
}

std::vector<float> PagedKv::queries(int n_new, int n_q_heads, uint64_t seed) const {
  Rng rng(seed);
  std::vector<float> q = gaussian(static_cast<size_t>(n_new) * n_q_heads * shape_.head_dim_k, rng);
  if (data_ == Data::sink) {
    for (size_t i = 0; i < q.size(); ++i) q[i] += 4.0f * bias_[i % shape_.head_dim_k];
  }
  return q;
}

namespace {

bool rotated(format::FormatId id) {
  using format::FormatId;
  return id == FormatId::turbo2 || id == FormatId::turbo3 || id == FormatId::turbo4 ||
         id == FormatId::turbo3_qjl || id == FormatId::turbo4_qjl;
}
bool sketched(format::FormatId id) {
  return id == format::FormatId::turbo3_qjl || id == format::FormatId::turbo4_qjl;
}

// Per-element error of a TurboQuant rotation computed in f32, relative to the input's 2-norm
// (format/rotation.h): per round, 2 popcount(d) - 1 randomized Hadamards (each one rounding per
// butterfly stage plus the 1/sqrt(n) scaling, norm-preserving) and popcount(d) - 1 Givens steps
// (two roundings each); two rounds.
double rotation_eps(int d) {
  const int blocks = __builtin_popcount(static_cast<unsigned>(d));
  int log2d = 0;
  while ((1 << log2d) < d) ++log2d;
  return gamma(2.0 * ((2 * blocks - 1) * (log2d + 2) + 2 * (blocks - 1)));
}

double norm2(const float* x, int n) {
  double s = 0;
  for (int j = 0; j < n; ++j) s += static_cast<double>(x[j]) * x[j];
  return std::sqrt(s);
}

// Bound on the logit error of one key, natural-log units: f32 rounding of the scaled dot
// product (the fold constant scale * log2(e) and q times it, dk FMAs), the query's integer
// rounding if the kernel uses one, and tanh's 4-ulp error plus two roundings (the cap in log2
// units, the product) times the cap when soft-capping. Rotated key formats add both rotations'
// f32 error (the kernel rotates q, the reference decodes k out of the rotated basis) and the
// dot product taken in the rotated basis; sketched ones the f32 rounding of S q (u per element)
// and its dot with d signs: gamma_{d+1} g sum|(S q)_i| <= gamma_{d+1} sqrt(pi/2)/d ||r||
// sqrt(d) ||S q||, with the residual ||r|| <= 2 max ||x|| (||x~_mse|| = ||x||).
struct LogitErrors {
  double scale;
  double softcap;
  const attention::KernelInfo* kernel;
  format::FormatId k_format;
  double sketch_bound = 0;   // per query: sqrt(pi/2)/d * 2 max||x|| * sqrt(d) * ||S q||
  double sketch_round = 0;   // per query: sqrt(pi/2) * 2 max||x|| * max|(S q)_j|
  double rotated_q_max = 0;  // per query: max |(Pi q)_j| (rotated formats)
  // kivi: the key's page's per-channel steps and mins (docs/formats.md), or nullptr.
  const double* kivi_step = nullptr;
  const double* kivi_min = nullptr;

  double operator()(const float* q, const float* k, int dk) const {
    double abs_dot = 0;
    for (int j = 0; j < dk; ++j) abs_dot += std::fabs(static_cast<double>(q[j]) * k[j]);
    double err = gamma(dk + 3) * abs_dot;
    if (rotated(k_format)) {
      err += (2 * rotation_eps(dk) + gamma(dk + 2)) * norm2(q, dk) * norm2(k, dk);
    }
    if (sketched(k_format)) err += gamma(dk + 1) * sketch_bound;
    if (sketched(k_format) && kernel->query_bits > 0) {
      // S q rounded to integers too: |(S q)_j - rounded| <= max|S q| / (2 levels), times
      // gamma sqrt(pi/2)/d over d signs, gamma <= 2 max||x||.
      const double levels = std::ldexp(1.0, kernel->query_bits - 1) - 1;
      err += sketch_round / (2 * levels) * (1 + 4 * kU);
    }
    // The kernel's own reading of key elements (relative error per element, in the format's
    // basis): sum_j |q'_j| rho |k'_j| <= rho ||q|| ||k||, q' carrying its int8 rounding.
    err += kernel->key_rel_error * (1 + 1.0 / 127) * norm2(q, dk) * norm2(k, dk);
    if (kernel->query_bits > 0 && kivi_step != nullptr) {
      // kivi folds q with the page's steps and rounds q_j step_j per group: sum over a group of
      // max|q step| / 254 * u_j, u_j = (k_j - min_j) / step_j; the f32 bias sum_j q_j min_j
      // adds gamma_d sum_j |q_j min_j|.
      const double levels = std::ldexp(1.0, kernel->query_bits - 1) - 1;
      double bias = 0;
      for (int j = 0; j < dk; ++j) bias += std::fabs(q[j] * kivi_min[j]);
      err += gamma(dk + 2) * bias;
      for (int g0 = 0; g0 < dk; g0 += kernel->query_group) {
        double qmax = 0, usum = 0;
        for (int j = g0; j < g0 + kernel->query_group; ++j) {
          qmax = std::max(qmax, std::fabs(q[j] * kivi_step[j]));
          if (kivi_step[j] > 0) usum += (k[j] - kivi_min[j]) / kivi_step[j];
        }
        err += qmax / (2 * levels) * usum * (1 + 4 * kU);
      }
    } else if (kernel->query_bits > 0 && rotated(k_format)) {
      // Rounded in the rotated basis: sum_j |dq'_j| |k'_j| <= max|q'| / 254 * sqrt(d) ||k||.
      const double levels = std::ldexp(1.0, kernel->query_bits - 1) - 1;
      err += rotated_q_max / (2 * levels) * std::sqrt(double(dk)) * norm2(k, dk) * (1 + 4 * kU);
    } else if (kernel->query_bits > 0) {
      const double levels = std::ldexp(1.0, kernel->query_bits - 1) - 1;  // 127 for int8
      for (int g0 = 0; g0 < dk; g0 += kernel->query_group) {
        double qmax = 0;
        double kabs = 0;
        for (int j = g0; j < g0 + kernel->query_group; ++j) {
          qmax = std::max(qmax, std::fabs(static_cast<double>(q[j])));
          kabs += std::fabs(static_cast<double>(k[j]));
        }
        err += qmax / (2 * levels) * kabs * (1 + 4 * kU);
      }
    }
    err *= scale;
    if (softcap > 0) err += 6 * kU * softcap;
    return err;
  }
};

double f16_at(const uint8_t* p) {
  return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// The value kernel's integer weights (KernelInfo::weight_bits = b): per chunk of up to
// s = weight_span_pages pages, scale group and row, the products w_t a_t (a: the token's step,
// turbo4's norm) are rounded against c = max w * max a / L over the chunk, L = 2^b - 1, so each
// carries an error of at most c/2 plus the f32 rounding of W = w L / max w, A = a / max a and
// W A (5 roundings of a number <= L: 5uL in units of c). Chunks start wherever a work item's
// page range does, so a page's c is bounded by the maxima over the 2s - 1 pages around it.
// The page's sum for channel j is then off by at most c/2 sum_t |e_tj|, e the integer element:
// |v_tj| / a_t for q8 and q4 (v = e a exactly), |(v_tj - m_t) / a_t - 8| for q4a. turbo4 sums in
// the rotated basis; its error vector there has 2-norm at most c/2 sum_t ||e_t|| sigma <= c/2 sum_t
// ||v_t|| / norm_t (1 + rho) (rho: the int8 table's relative error), which bounds every element
// after the rotation back. w: one row's normalised weights over all tokens (0 outside its range),
// grown by `spread`; v: the head's decoded values [n][dv]. Adds the bound to err[0, dv).
// q4a values: the kernels sum a token's code part (u or u - 8, times the step) and its offset
// (min, or min + 8 step) apart, so its rounding scales with |x - c| + |c| <= |x| + 2 |c| (c the
// offset), not with |x|: returns 2 (|min| + 8 step) for value j of encoded token s, else 0.
double q4a_offset_term(const cache::LayerView& view, int head, int64_t s, int j) {
  if (view.v_codec->info().id != format::FormatId::q4a || s >= view.encoded_tokens()) return 0;
  const int dv = view.head_dim_v, T = view.page_tokens, g = format::group_size(dv);
  const size_t steps = (static_cast<size_t>(T) + 3) / 4 * 4 * dv / 2;  // after the 4-bit codes
  const size_t at = 2 * (static_cast<size_t>(j / g) * T + s % T);
  const uint8_t* block = view.v_block(static_cast<size_t>(s / T), head);
  const double step = f16_at(block + steps + at);
  const double min = f16_at(block + steps + 2 * static_cast<size_t>(T) * (dv / g) + at);
  return 2 * (std::fabs(min) + 8 * std::fabs(step));
}

void add_weight_rounding(const cache::LayerView& view, int head, const std::vector<double>& w,
                         double spread, const std::vector<float>& v,
                         const attention::KernelInfo& info, double* err) {
  using format::FormatId;
  const FormatId id = view.v_codec->info().id;
  const int dv = view.head_dim_v, T = view.page_tokens;
  const double levels = std::ldexp(1.0, info.weight_bits) - 1;
  const bool turbo = rotated(id);
  const int g = turbo ? dv : format::group_size(dv);
  const size_t T4 = (static_cast<size_t>(T) + 3) / 4 * 4;
  const size_t steps = turbo ? 0 : T4 * dv * (id == FormatId::q8 ? 8 : 4) / 8;
  const size_t mins = steps + 2 * static_cast<size_t>(T) * (dv / g);
  const int64_t n_pages = static_cast<int64_t>(view.page_ids.size());
  const int64_t span = std::max(1, info.weight_span_pages);
  const auto unit = [&](int64_t p, int g0, int t) {
    return f16_at(view.v_block(static_cast<size_t>(p), head) + steps + 2 * ((g0 / g) * T + t));
  };
  for (int64_t p = 0; p < n_pages; ++p) {
    const uint8_t* block = view.v_block(static_cast<size_t>(p), head);
    for (int g0 = 0; g0 < dv; g0 += g) {
      double wmax = 0, amax = 0;
      for (int64_t q = std::max<int64_t>(0, p - span + 1); q < std::min(n_pages, p + span); ++q) {
        for (int t = 0; t < T; ++t) {
          wmax = std::max(wmax, w[q * T + t] * (1 + spread));
          amax = std::max(amax, unit(q, g0, t));
        }
      }
      const double c = wmax * amax / levels;
      if (c == 0) continue;
      const double half = c * (0.5 + 6 * kU * levels);
      if (turbo) {
        double sum = 0;
        for (int t = 0; t < T; ++t) {
          const double n = unit(p, g0, t);
          if (n > 0) sum += norm2(&v[(p * T + t) * dv], dv) / n;
        }
        for (int j = 0; j < dv; ++j) err[j] += half * sum * (1 + info.value_rel_error);
        continue;
      }
      for (int j = g0; j < g0 + g; ++j) {
        double sum = 0;
        for (int t = 0; t < T; ++t) {
          const double a = unit(p, g0, t);
          // q4a's integer element is its code - 8: (v - min) / step - 8.
          const double m = id == FormatId::q4a ? f16_at(block + mins + 2 * ((g0 / g) * T + t)) : 0;
          const double centre = id == FormatId::q4a ? 8.0 : 0.0;
          if (a > 0) sum += std::fabs((v[(p * T + t) * dv + j] - m) / a - centre);
        }
        err[j] += half * sum;
      }
    }
  }
}

}  // namespace

std::vector<double> tolerance(const cache::LayerView& view, const float* q, int n_new,
                              int n_q_heads, const attention::Params& params, double max_key_norm) {
  // The roundings the tests state for these kernels (kernel_expect.h, pinned against
  // kernel_info() by KernelInfo.*), never the kernels' own report.
  const attention::KernelInfo k_kernel = expected_kernel(*view.k_codec, params);
  const attention::KernelInfo v_kernel = expected_kernel(*view.v_codec, params);
  const int dk = view.head_dim_k;
  const int dv = view.head_dim_v;
  const int group = n_q_heads / view.n_kv_heads;
  const int64_t n = view.n_tokens();
  const double scale = params.scale > 0 ? params.scale : 1.0 / std::sqrt(double(dk));
  LogitErrors logit_error{scale, params.softcap, &k_kernel, view.k_codec->info().id};
  const bool v_rotated = rotated(view.v_codec->info().id);
  // kivi keys: each page's per-channel steps and mins, read at the documented offsets.
  const format::FormatId kf = view.k_codec->info().id;
  const bool kivi = kf == format::FormatId::kivi4 || kf == format::FormatId::kivi2;
  std::vector<std::vector<double>> kivi_steps(static_cast<size_t>(view.n_kv_heads));
  std::vector<std::vector<double>> kivi_mins(kivi_steps.size());
  for (int h = 0; kivi && h < view.n_kv_heads; ++h) {
    const int bits = kf == format::FormatId::kivi4 ? 4 : 2;
    const size_t codes = static_cast<size_t>(view.page_tokens) * dk * bits / 8;
    for (size_t p = 0; p < view.page_ids.size(); ++p) {
      const uint8_t* block = view.k_block(p, h);
      for (int j = 0; j < dk; ++j) {
        kivi_steps[h].push_back(f16_at(block + codes + 2 * j));
        kivi_mins[h].push_back(f16_at(block + codes + 2 * (dk + j)));
      }
    }
  }
  const double v_rot = 2 * rotation_eps(dv);
  std::vector<float> qp(view.k_codec->query_floats());
  // Roundings an accumulator sees: one FMA per token, a rescale per chunk (>= 16 tokens), the
  // split merge and the final normalisation; the softmax sum likewise.
  const double acc_gamma = 2 * gamma(static_cast<double>(n) + n / 16.0 + 64);
  std::vector<double> tol(static_cast<size_t>(n_new) * n_q_heads * dv);
  std::vector<double> logit(static_cast<size_t>(n)), err(static_cast<size_t>(n));
  for (int h = 0; h < view.n_kv_heads; ++h) {
    const std::vector<float> k = decoded(view, h, true);
    const std::vector<float> v = decoded(view, h, false);
    for (int t = 0; t < n_new; ++t) {
      const int64_t pos = n - n_new + t;
      const int64_t lo = params.window > 0 ? std::max<int64_t>(0, pos - params.window + 1) : 0;
      for (int i = h * group; i < (h + 1) * group; ++i) {
        const float* qi = q + (static_cast<size_t>(t) * n_q_heads + i) * dk;
        if (rotated(logit_error.k_format)) {
          view.k_codec->prepare_query(h, qi, qp.data());  // qp[0, d) = Pi q
          logit_error.rotated_q_max = 0;
          for (int j = 0; j < dk; ++j) {
            logit_error.rotated_q_max =
                std::max(logit_error.rotated_q_max, double(std::fabs(qp[j])));
          }
        }
        if (sketched(logit_error.k_format)) {
          view.k_codec->prepare_query(h, qi, qp.data());  // qp[d, 2d) = S q
          logit_error.sketch_bound = std::sqrt(std::acos(-1.0) / 2) / dk * 2 * max_key_norm *
                                     std::sqrt(double(dk)) * norm2(qp.data() + dk, dk);
          double sq_max = 0;
          for (int j = 0; j < dk; ++j) sq_max = std::max(sq_max, double(std::fabs(qp[dk + j])));
          logit_error.sketch_round = std::sqrt(std::acos(-1.0) / 2) * 2 * max_key_norm * sq_max;
        }
        double m = params.sinks ? params.sinks[i] : -1e300;
        double worst = 0;
        for (int64_t s = lo; s <= pos; ++s) {
          double dot = 0;
          for (int j = 0; j < dk; ++j) dot += static_cast<double>(qi[j]) * k[s * dk + j];
          logit[s] = params.softcap > 0 ? params.softcap * std::tanh(dot * scale / params.softcap)
                                        : dot * scale;
          if (kivi && s < view.encoded_tokens()) {
            const size_t page = static_cast<size_t>(s / view.page_tokens);
            logit_error.kivi_step = &kivi_steps[h][page * dk];
            logit_error.kivi_min = &kivi_mins[h][page * dk];
          } else {
            logit_error.kivi_step = logit_error.kivi_min = nullptr;
          }
          err[s] = logit_error(qi, &k[s * dk], dk);
          m = std::max(m, logit[s]);
        }
        double sum = params.sinks ? std::exp(params.sinks[i] - m) : 0;
        for (int64_t s = lo; s <= pos; ++s) {
          // exp's argument x - m is rounded too; the kernels' exp2 is within kExpRelError.
          worst =
              std::max(worst, err[s] + kU * std::fabs(logit[s] - m) + kU + attention::kExpRelError);
          logit[s] = std::exp(logit[s] - m);  // now the unnormalised weight
          sum += logit[s];
        }
        // Weights perturbed by factors within exp(+-worst) stay, once normalised, within
        // exp(+-2 worst) of the reference's: |w' - w| <= w * expm1(2 worst).
        const double spread = std::expm1(2 * worst);
        std::vector<double> wv(static_cast<size_t>(dv), 0.0);  // sum_s w_s |v_sj|
        double wnorm = 0;                                      // sum_s w_s ||v_s||
        for (int64_t s = lo; s <= pos; ++s) {
          for (int j = 0; j < dv; ++j) {
            wv[j] += logit[s] / sum * (std::fabs(v[s * dv + j]) + q4a_offset_term(view, h, s, j));
          }
          if (v_rotated) wnorm += logit[s] / sum * norm2(&v[s * dv], dv);
        }
        // Rotated values: the kernel accumulates in the rotated basis (its rounding, acc_gamma
        // per rotated element, maps through the orthogonal finish() to at most its 2-norm per
        // element) and rotates back once; the reference rotates each token back. A value table
        // with relative error rho adds at most rho * sum_s w_s ||v_s|| the same way.
        const double rot = v_rotated ? (v_rot + acc_gamma + v_kernel.value_rel_error) * wnorm : 0.0;
        double* ti = tol.data() + (static_cast<size_t>(t) * n_q_heads + i) * dv;
        for (int j = 0; j < dv; ++j) ti[j] = (spread + acc_gamma + kU) * wv[j] + rot + 1e-30;
        if (v_kernel.weight_bits > 0 && view.encoded_tokens() > 0) {
          std::vector<double> w(static_cast<size_t>(view.encoded_tokens()), 0.0);
          for (int64_t s = lo; s <= pos && s < view.encoded_tokens(); ++s) w[s] = logit[s] / sum;
          add_weight_rounding(view, h, w, spread, v, v_kernel, ti);
        }
      }
    }
  }
  return tol;
}

Excess excess(const std::vector<float>& a, const std::vector<float>& b,
              const std::vector<double>& tol) {
  Excess e;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    const double r = std::isfinite(d) ? d / tol[i] : std::numeric_limits<double>::infinity();
    if (r > e.worst || !std::isfinite(r)) {
      e.worst = r;
      e.index = i;
      if (!std::isfinite(r)) break;
    }
  }
  return e;
}

}  // namespace kvpack::testing
