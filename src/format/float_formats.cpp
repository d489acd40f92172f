// f32, f16 and bf16: values stored as they are.
//
// Block layout (one head of one page), payload page_tokens * head_dim * sizeof(element), padded
// to 64 bytes:
//   V role: token-major [page_tokens][head_dim] (accumulate adds whole rows);
//   K role: channel-major [head_dim][page_tokens], so a SIMD score kernel multiplies one query
//   channel (broadcast) by 16 tokens' keys per instruction with no horizontal sums.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "base/half.h"
#include "format/families.h"

namespace kvpack::format {
namespace {

// Element traits: storage type, conversion each way (encode saturates, see format.h).
struct F32 {
  using T = float;
  static constexpr BlockLayout::Element kElement = BlockLayout::Element::f32;
  static T from(float x) {
    if (std::isnan(x)) return 0.0f;
    if (std::isinf(x)) return x > 0 ? FLT_MAX : -FLT_MAX;
    return x;
  }
  static float to(T x) { return x; }
};
struct F16 {
  using T = uint16_t;
  static constexpr BlockLayout::Element kElement = BlockLayout::Element::f16;
  static T from(float x) { return f32_to_f16_sat(x); }
  static float to(T x) { return f16_to_f32(x); }
};
struct BF16 {
  using T = uint16_t;
  static constexpr BlockLayout::Element kElement = BlockLayout::Element::bf16;
  static T from(float x) {
    if (std::isnan(x)) return 0;
    if (std::isinf(x)) return x > 0 ? 0x7f7fu : 0xff7fu;  // +-largest finite bf16
    const uint16_t b = f32_to_bf16(x);
    if ((b & 0x7fffu) == 0x7f80u) return static_cast<uint16_t>(b - 1);  // rounded up to inf
    return b;
  }
  static float to(T x) { return bf16_to_f32(x); }
};

template <typename E>
class FloatCodec final : public Codec {
 public:
  using T = typename E::T;
  FloatCodec(const FormatInfo& info, const CodecConfig& config) : Codec(info, config) {
    layout_.element = E::kElement;
    layout_.order = config.role == Role::K ? BlockLayout::Order::channel_major
                                           : BlockLayout::Order::token_major;
    layout_.planes[0] = 8 * sizeof(T);
    layout_.payload = sizeof(T) * static_cast<size_t>(config.page_tokens) * config.head_dim;
  }

  void encode(int /*head*/, const float* x, int n, uint8_t* block) const override {
    T* out = reinterpret_cast<T*>(block);
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < head_dim(); ++j) out[at(t, j)] = E::from(x[t * head_dim() + j]);
    }
  }

  void decode(int /*head*/, const uint8_t* block, int n, float* out) const override {
    const T* in = reinterpret_cast<const T*>(block);
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < head_dim(); ++j) out[t * head_dim() + j] = E::to(in[at(t, j)]);
    }
  }

  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    const T* k = reinterpret_cast<const T*>(block);  // K role: [d][page_tokens]
    const int d = head_dim();
    for (int i = 0; i < n_q; ++i) {
      for (int t = 0; t < n; ++t) {
        double s = 0;
        for (int j = 0; j < d; ++j) s += static_cast<double>(qp[i * d + j]) * E::to(k[at(t, j)]);
        logits[i * logits_stride + t] = static_cast<float>(s);
      }
    }
  }

  void accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                  float* acc) const override {
    const T* v = reinterpret_cast<const T*>(block);  // V role: [page_tokens][d]
    const int d = head_dim();
    for (int i = 0; i < n_q; ++i) {
      for (int t = 0; t < n; ++t) {
        const float wt = w[i * w_stride + t];
        for (int j = 0; j < d; ++j) acc[i * d + j] += wt * E::to(v[at(t, j)]);
      }
    }
  }

 private:
  // Element index of token t, channel j in a block of this codec's role.
  size_t at(int t, int j) const {
    return config_.role == Role::K ? static_cast<size_t>(j) * page_tokens() + t
                                   : static_cast<size_t>(t) * head_dim() + j;
  }
};

template <typename E>
size_t float_payload(int head_dim, int page_tokens) {
  return sizeof(typename E::T) * static_cast<size_t>(head_dim) * page_tokens;
}

std::string any_geometry(const CodecConfig&) {
  return {};
}

template <typename E, FormatId id>
std::unique_ptr<Codec> make_float(const CodecConfig& config) {
  return std::make_unique<FloatCodec<E>>(info(id), config);
}

}  // namespace

void add_float_formats(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::f32, "f32", "fp32", kRoleK | kRoleV,
                  "32-bit float, exact; reference and debugging", float_payload<F32>, any_geometry,
                  make_float<F32, FormatId::f32>});
  rows.push_back({FormatId::f16, "f16", "fp16", kRoleK | kRoleV,
                  "IEEE half; the usual baseline (saturates at +-65504)", float_payload<F16>,
                  any_geometry, make_float<F16, FormatId::f16>});
  rows.push_back({FormatId::bf16, "bf16", "", kRoleK | kRoleV,
                  "bfloat16: f32's range, 8-bit mantissa", float_payload<BF16>, any_geometry,
                  make_float<BF16, FormatId::bf16>});
}

}  // namespace kvpack::format
