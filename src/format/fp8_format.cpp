// fp8: e4m3 codes with one f16 scale per token (per head), the token's largest magnitude
// mapped to e4m3's largest value 448.
//
// Head block (T = page_tokens, d = head_dim):
//   codes   e4m3: K role channel-major [d][T] (a channel's tokens side by side, as f16 keys, so
//           a kernel scores 16 tokens per vector), V role token-major [T][d]
//           (OCP e4m3 "FN": bias 7, no infinities, max 448)
//   scales  f16[T]      at byte offset T * d
// x = e4m3(code) * scale, code = e4m3(x / scale) rounded to nearest even, scale = amax / 448
// stored as f16 (see quant.h for the step-up when that f16 would be subnormal or zero).
// Error: half an e4m3 ulp, i.e. at most 2^-4 |x|, for values that land in e4m3's normal range,
// and at most 2^-10 * scale (half the subnormal spacing 2^-9) below it.
#include "format/families.h"
#include "format/quant.h"

namespace kvpack::format {
namespace {

// Largest e4m3 value plus half its gap (448 - 416 = 32): the scale must keep amax / scale at
// or below this so saturation never errs by more than half an ulp.
constexpr double kE4M3Cover = kE4M3Max + 16.0;

struct Fp8Layout {
  int d;
  int T;
  bool key;  // K role: channel-major codes
  size_t payload() const { return static_cast<size_t>(T) * d + 2 * static_cast<size_t>(T); }
  size_t code_at(int t, int j) const {
    return key ? static_cast<size_t>(j) * T + t : static_cast<size_t>(t) * d + j;
  }
  size_t scale_at(int t) const { return static_cast<size_t>(T) * d + 2 * static_cast<size_t>(t); }
};

class Fp8Codec final : public Codec {
 public:
  Fp8Codec(const FormatInfo& info, const CodecConfig& config)
      : Codec(info, config), lay_{config.head_dim, config.page_tokens, config.role == Role::K} {
    layout_.element = BlockLayout::Element::e4m3;
    layout_.order = lay_.key ? BlockLayout::Order::channel_major : BlockLayout::Order::token_major;
    layout_.planes[0] = 8;
    layout_.scales = lay_.scale_at(0);
    layout_.payload = lay_.payload();
  }

  // x: [n][d]
  void encode(int /*head*/, const float* x, int n, uint8_t* block) const override {
    zero_padding(block, lay_.payload(), head_bytes());
    for (int t = 0; t < n; ++t) {
      const float* row = x + static_cast<size_t>(t) * lay_.d;
      float amax = 0;
      for (int j = 0; j < lay_.d; ++j) amax = std::max(amax, std::fabs(saturate_input(row[j])));
      const uint16_t s = fit_step(amax, kE4M3Max, kE4M3Cover);
      store_f16(block + lay_.scale_at(t), s);
      const float scale = f16_to_f32(s);
      for (int j = 0; j < lay_.d; ++j) {
        block[lay_.code_at(t, j)] = scale == 0.0f ? 0 : f32_to_e4m3(saturate_input(row[j]) / scale);
      }
    }
  }

  // out: [n][d]
  void decode(int /*head*/, const uint8_t* block, int n, float* out) const override {
    for (int t = 0; t < n; ++t) {
      const float scale = load_f16(block + lay_.scale_at(t));
      for (int j = 0; j < lay_.d; ++j) {
        out[static_cast<size_t>(t) * lay_.d + j] = e4m3_to_f32(block[lay_.code_at(t, j)]) * scale;
      }
    }
  }

  // scale_t * <q, e4m3 codes of token t>
  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    for (int i = 0; i < n_q; ++i) {
      const float* q = qp + static_cast<size_t>(i) * lay_.d;
      for (int t = 0; t < n; ++t) {
        double dot = 0;
        for (int j = 0; j < lay_.d; ++j) {
          dot += static_cast<double>(q[j]) * e4m3_to_f32(block[lay_.code_at(t, j)]);
        }
        logits[static_cast<size_t>(i) * logits_stride + t] =
            static_cast<float>(load_f16(block + lay_.scale_at(t)) * dot);
      }
    }
  }

  // acc[i][j] += (w * scale_t) * e4m3(code)
  void accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                  float* acc) const override {
    for (int i = 0; i < n_q; ++i) {
      float* a = acc + static_cast<size_t>(i) * lay_.d;
      for (int t = 0; t < n; ++t) {
        const float ws =
            w[static_cast<size_t>(i) * w_stride + t] * load_f16(block + lay_.scale_at(t));
        for (int j = 0; j < lay_.d; ++j) a[j] += ws * e4m3_to_f32(block[lay_.code_at(t, j)]);
      }
    }
  }

 private:
  Fp8Layout lay_;
};

size_t fp8_payload(int head_dim, int page_tokens) {
  return Fp8Layout{head_dim, page_tokens, false}.payload();
}

// One scale per token: any head dim works.
std::string fp8_any_geometry(const CodecConfig&) {
  return {};
}

std::unique_ptr<Codec> make_fp8(const CodecConfig& config) {
  return std::make_unique<Fp8Codec>(info(FormatId::fp8), config);
}

}  // namespace

void add_fp8_format(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::fp8, "fp8", "fp8_e4m3", kRoleK | kRoleV,
                  "fp8 e4m3, f16 scale per token (token max -> 448)", fp8_payload, fp8_any_geometry,
                  make_fp8});
}

}  // namespace kvpack::format
