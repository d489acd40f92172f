// turbo2, turbo3, turbo4: TurboQuant MSE (arXiv 2504.19874) for keys and values.
//
// K role: prepare_query rotates q once per head (qp = Pi q); a token's logit is
//   stored_norm * sum_j qp_j c[idx_j]  (= <Pi q, Pi x~> = <q, x~>), read from the packed codes.
// V role: accumulate stays in the rotated basis (acc += w * stored_norm * c[idx]); finish applies
// Pi^T once per query head. Byte layout: turbo_layout.h and docs/formats.md (codes in bit planes
// the attention kernels read with int8 dot products: across tokens for keys, token quads for
// values).
#include <vector>

#include "base/half.h"
#include "format/families.h"
#include "format/turbo_layout.h"
#include "format/turbo_mse.h"

namespace kvpack::format {
namespace {

class TurboCodec final : public Codec {
 public:
  TurboCodec(const FormatInfo& info, const CodecConfig& config, int bits)
      : Codec(info, config),
        turbo_{config.head_dim, config.page_tokens, bits, false, config.role == Role::K},
        mse_(config.head_dim, bits, config.n_heads, config.seed) {
    turbo_.describe(layout_);
  }

  void encode(int head, const float* x, int n, uint8_t* block) const override {
    const int d = head_dim();
    std::vector<float> xs(static_cast<size_t>(d));     // [d] saturated token
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d] codes
    turbo_.zero_padding(block, head_bytes());
    for (int t = 0; t < n; ++t) {
      saturate_to_f16_range(x + static_cast<size_t>(t) * d, d, xs.data());
      turbo_.set_norm(block, t, mse_.quantize(head, xs.data(), idx.data()));
      turbo_.store_codes(block, t, idx.data());
    }
  }

  void decode(int head, const uint8_t* block, int n, float* out) const override {
    const int d = head_dim();
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d]
    for (int t = 0; t < n; ++t) {
      turbo_.load_codes(block, t, idx.data());
      mse_.reconstruct(head, turbo_.norm(block, t), idx.data(), out + static_cast<size_t>(t) * d);
    }
  }

  void prepare_query(int head, const float* q, float* qp) const override {
    mse_.rotation(head).forward(q, qp);
  }

  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    const int d = head_dim();
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d]
    for (int t = 0; t < n; ++t) {
      turbo_.load_codes(block, t, idx.data());
      const double norm = f16_to_f32(turbo_.norm(block, t));
      for (int i = 0; i < n_q; ++i) {
        const double dot = mse_.dot_codes(qp + static_cast<size_t>(i) * d, idx.data());
        logits[i * logits_stride + t] = static_cast<float>(norm * dot);
      }
    }
  }

  void accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                  float* acc) const override {
    const int d = head_dim();
    const std::vector<float>& c = mse_.codebook().centroids;
    std::vector<uint8_t> idx(static_cast<size_t>(d));  // [d]
    for (int t = 0; t < n; ++t) {
      turbo_.load_codes(block, t, idx.data());
      const float norm = f16_to_f32(turbo_.norm(block, t));
      for (int i = 0; i < n_q; ++i) {
        const float wn = w[i * w_stride + t] * norm;
        float* a = acc + static_cast<size_t>(i) * d;  // [d], rotated basis
        for (int j = 0; j < d; ++j) a[j] += wn * c[idx[j]];
      }
    }
  }

  void finish(int head, const float* acc, int n_q, float* out) const override {
    const size_t d = static_cast<size_t>(head_dim());
    for (int i = 0; i < n_q; ++i) mse_.rotation(head).inverse(acc + i * d, out + i * d);
  }

 private:
  TurboLayout turbo_;
  TurboMse mse_;
};

template <int kBits>
size_t turbo_payload(int head_dim, int page_tokens) {
  return TurboLayout{head_dim, page_tokens, kBits, false, false}.payload_bytes();
}

template <int kBits, FormatId kId>
std::unique_ptr<Codec> make_turbo(const CodecConfig& config) {
  return std::make_unique<TurboCodec>(info(kId), config, kBits);
}

}  // namespace

void add_turbo_formats(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::turbo2, "turbo2", "", kRoleK | kRoleV,
                  "TurboQuant MSE: Hadamard rotation + 2-bit Lloyd-Max codebook + f16 norm",
                  turbo_payload<2>, turbo_geometry_problem, make_turbo<2, FormatId::turbo2>});
  rows.push_back({FormatId::turbo3, "turbo3", "", kRoleK | kRoleV,
                  "TurboQuant MSE: Hadamard rotation + 3-bit Lloyd-Max codebook + f16 norm",
                  turbo_payload<3>, turbo_geometry_problem, make_turbo<3, FormatId::turbo3>});
  rows.push_back({FormatId::turbo4, "turbo4", "", kRoleK | kRoleV,
                  "TurboQuant MSE: Hadamard rotation + 4-bit Lloyd-Max codebook + f16 norm",
                  turbo_payload<4>, turbo_geometry_problem, make_turbo<4, FormatId::turbo4>});
}

}  // namespace kvpack::format
