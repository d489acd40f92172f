// turbo3_qjl, turbo4_qjl: TurboQuant's inner-product quantizer for keys: a (b-1)-bit TurboQuant
// MSE part plus a 1-bit QJL sketch of its residual.
//
//   encode:  x~_mse = the norm-corrected MSE reconstruction (turbo_mse.h), exactly as decoded
//            (with the f16-rounded stored norm);  r = x - x~_mse;  store sign(S r), gamma = ||r||
//   score:   <q, k~> = <q, x~_mse> + gamma sqrt(pi/2)/d <S q, sign(S r)>
//   decode:  x~_mse + gamma sqrt(pi/2)/d S^T sign(S r)        (so score == <q, decode(k)>)
// S: [d][d] i.i.d. N(0, 1), fixed per layer (CodecConfig::seed); prepare_query stores
// [Pi q, S q] (query_floats() = 2d).
//
// Why unbiased with norm correction: E_S[<S q, sign(S r)>] = d sqrt(2/pi) <q, r> / ||r|| holds
// for any fixed r, so the estimator is unbiased for <q, x> whatever deterministic x~_mse is used,
// as long as r is taken against the reconstruction decode() actually produces. Norm correction
// only changes ||r|| (and so the variance, (pi/2 - 1)-ish * ||q||^2 ||r||^2 / d): by under 3% at
// 2-3 bits versus the uncorrected scale. The one remaining bias is gamma's f16 rounding, a
// relative 2^-11 on the residual term.
#include <cmath>
#include <numbers>
#include <vector>

#include "base/half.h"
#include "base/rng.h"
#include "format/families.h"
#include "format/turbo_layout.h"
#include "format/turbo_mse.h"

namespace kvpack::format {
namespace {

class TurboQjlCodec final : public Codec {
 public:
  TurboQjlCodec(const FormatInfo& info, const CodecConfig& config, int bits)
      : Codec(info, config),
        turbo_{config.head_dim, config.page_tokens, bits - 1, true, true},
        mse_(config.head_dim, bits - 1, config.n_heads, config.seed),
        sketch_(static_cast<size_t>(config.head_dim) * config.head_dim),
        qjl_scale_(std::sqrt(std::numbers::pi / 2) / config.head_dim) {
    Rng rng(mix_seed(config.seed, 0x716a6c5ull));
    for (float& s : sketch_) s = static_cast<float>(rng.normal());
    turbo_.describe(layout_);
  }

  size_t query_floats() const override { return 2 * static_cast<size_t>(head_dim()); }

  void encode(int head, const float* x, int n, uint8_t* block) const override {
    const int d = head_dim();
    std::vector<float> xs(static_cast<size_t>(d)), xm(xs.size()), r(xs.size()), sr(xs.size());
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d] MSE codes
    std::vector<uint8_t> signs(static_cast<size_t>(d) / 8);
    turbo_.zero_padding(block, head_bytes());
    for (int t = 0; t < n; ++t) {
      saturate_to_f16_range(x + static_cast<size_t>(t) * d, d, xs.data());
      const uint16_t stored = mse_.quantize(head, xs.data(), idx.data());
      turbo_.set_norm(block, t, stored);
      turbo_.store_codes(block, t, idx.data());
      mse_.reconstruct(head, stored, idx.data(), xm.data());
      double r2 = 0;
      for (int j = 0; j < d; ++j) {
        r[j] = xs[j] - xm[j];
        r2 += static_cast<double>(r[j]) * r[j];
      }
      sketch(r.data(), sr.data());
      pack_signs(sr.data(), d, signs.data());
      turbo_.store_signs(block, t, signs.data());
      turbo_.set_gamma(block, t, f32_to_f16_sat(static_cast<float>(std::sqrt(r2))));
    }
  }

  void decode(int head, const uint8_t* block, int n, float* out) const override {
    const int d = head_dim();
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d]
    std::vector<uint8_t> signs(static_cast<size_t>(d) / 8);
    std::vector<float> z(static_cast<size_t>(d));  // [d] +-1
    for (int t = 0; t < n; ++t) {
      float* o = out + static_cast<size_t>(t) * d;
      turbo_.load_codes(block, t, idx.data());
      mse_.reconstruct(head, turbo_.norm(block, t), idx.data(), o);
      turbo_.load_signs(block, t, signs.data());
      unpack_signs(signs.data(), d, z.data());
      const double g = f16_to_f32(turbo_.gamma(block, t)) * qjl_scale_;
      for (int j = 0; j < d; ++j) {  // o += g * S^T z
        double s = 0;
        for (int i = 0; i < d; ++i) s += static_cast<double>(sketch_[i * d + j]) * z[i];
        o[j] = static_cast<float>(o[j] + g * s);
      }
    }
  }

  void prepare_query(int head, const float* q, float* qp) const override {
    mse_.rotation(head).forward(q, qp);  // qp[0, d) = Pi q
    sketch(q, qp + head_dim());          // qp[d, 2d) = S q
  }

  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    const int d = head_dim();
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d]
    std::vector<uint8_t> signs(static_cast<size_t>(d) / 8);
    std::vector<float> z(static_cast<size_t>(d));  // [d] +-1
    for (int t = 0; t < n; ++t) {
      turbo_.load_codes(block, t, idx.data());
      turbo_.load_signs(block, t, signs.data());
      unpack_signs(signs.data(), d, z.data());
      const double norm = f16_to_f32(turbo_.norm(block, t));
      const double g = f16_to_f32(turbo_.gamma(block, t)) * qjl_scale_;
      for (int i = 0; i < n_q; ++i) {
        const float* q = qp + i * query_floats();
        double sk = 0;
        for (int j = 0; j < d; ++j) sk += static_cast<double>(q[d + j]) * z[j];
        logits[i * logits_stride + t] =
            static_cast<float>(norm * mse_.dot_codes(q, idx.data()) + g * sk);
      }
    }
  }

 private:
  // out: [d] = S v for v: [d].
  void sketch(const float* v, float* out) const {
    const int d = head_dim();
    for (int i = 0; i < d; ++i) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += static_cast<double>(sketch_[i * d + j]) * v[j];
      out[i] = static_cast<float>(s);
    }
  }

  TurboLayout turbo_;
  TurboMse mse_;
  std::vector<float> sketch_;  // S: [d][d], row-major, i.i.d. N(0, 1)
  double qjl_scale_;           // sqrt(pi/2) / d
};

template <int kBits>
size_t qjl_payload(int head_dim, int page_tokens) {
  return TurboLayout{head_dim, page_tokens, kBits - 1, true, true}.payload_bytes();
}

template <int kBits, FormatId kId>
std::unique_ptr<Codec> make_qjl(const CodecConfig& config) {
  return std::make_unique<TurboQjlCodec>(info(kId), config, kBits);
}

}  // namespace

void add_turbo_qjl_formats(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::turbo3_qjl, "turbo3_qjl", "", kRoleK,
                  "TurboQuant keys: 2-bit MSE + 1-bit QJL residual sketch, unbiased logits",
                  qjl_payload<3>, turbo_geometry_problem, make_qjl<3, FormatId::turbo3_qjl>});
  rows.push_back({FormatId::turbo4_qjl, "turbo4_qjl", "", kRoleK,
                  "TurboQuant keys: 3-bit MSE + 1-bit QJL residual sketch, unbiased logits",
                  qjl_payload<4>, turbo_geometry_problem, make_qjl<4, FormatId::turbo4_qjl>});
}

}  // namespace kvpack::format
