// kivi4, kivi2: KIVI's per-channel keys (arXiv 2402.02750). Key outliers live in a few fixed
// channels, so KIVI groups each channel across tokens rather than each token across channels:
// one f16 step and one f16 min per channel per page, asymmetric min/max, b = 4 or 2 bits.
// Bits per value = b + 32 / page_tokens (two f16 per channel per page).
//
// Head block (T = page_tokens, d = head_dim):
//   codes  T * d * b / 8 bytes, a key bit plane (format/planes.h): lines of 32/b channels,
//          [lines][T][4] bytes, so 16 tokens x 4 channels of one value position are one 64-byte
//          operand of an int8 dot-product instruction (kivi4: channel 8o + 4k + i of token t in
//          nibble k of byte (o, t, i); kivi2: channel 16o + 4k + i in bits 2k..2k+1)
//   steps  f16[d]  at byte offset T * d * b / 8
//   mins   f16[d]  right after the steps
// x[t][j] = u * step[j] + min[j], u = round((x - min) / step) in 0..2^b-1; step and min are
// chosen by squared error among the grids that hold each of the channel's values within half a
// step (format/step_search.h), the plain fit (min = the channel's minimum rounded down to f16,
// step = (max - min) / (2^b - 1)) among them.
//
// A page's grids are fitted to the tokens encoded together, so a page is encoded at once (the
// cache keeps its tail page unencoded until it is full). K role only: values have no
// per-channel outlier structure, and KIVI quantizes them per token.
#include <algorithm>
#include <string>
#include <vector>

#include "format/families.h"
#include "format/planes.h"
#include "format/quant.h"
#include "format/step_search.h"

namespace kvpack::format {
namespace {

// The byte layout of one head block; every offset and code position is computed here.
struct KiviLayout {
  int d;
  int T;
  int bits;

  int levels() const { return (1 << bits) - 1; }
  size_t row_bytes() const { return static_cast<size_t>(d) * bits / 8; }
  size_t steps_offset() const { return static_cast<size_t>(T) * row_bytes(); }
  size_t mins_offset() const { return steps_offset() + 2 * static_cast<size_t>(d); }
  size_t payload() const { return mins_offset() + 2 * static_cast<size_t>(d); }

  int get(const uint8_t* block, int t, int j) const {
    int shift = 0;
    const size_t at = key_plane_byte(T, d, bits, t, j, &shift);
    return (block[at] >> shift) & levels();
  }
  void put(uint8_t* block, int t, int j, int u) const {
    int shift = 0;
    uint8_t& byte = block[key_plane_byte(T, d, bits, t, j, &shift)];
    byte = static_cast<uint8_t>((byte & ~(levels() << shift)) | (u << shift));
  }
};

class KiviCodec final : public Codec {
 public:
  KiviCodec(const FormatInfo& info, const CodecConfig& config, int bits)
      : Codec(info, config), lay_{config.head_dim, config.page_tokens, bits} {
    layout_.element = BlockLayout::Element::integer;
    layout_.order = BlockLayout::Order::key_planes;
    layout_.planes[0] = bits;
    layout_.group = 1;
    layout_.per_channel = true;
    layout_.steps = lay_.steps_offset();
    layout_.mins = lay_.mins_offset();
    layout_.payload = lay_.payload();
  }

  // x: [n][d]; channel j's grid spans x[0..n-1][j].
  void encode(int /*head*/, const float* x, int n, uint8_t* block) const override {
    zero_padding(block, lay_.payload(), head_bytes());
    const int d = lay_.d;
    std::vector<float> col(static_cast<size_t>(std::max(n, 1)), 0.0f);  // [n] channel j, saturated
    for (int j = 0; j < d; ++j) {
      for (int t = 0; t < n; ++t) col[t] = saturate_input(x[static_cast<size_t>(t) * d + j]);
      const auto [lo, hi] = std::minmax_element(col.begin(), col.end());
      const AsymGrid grid =
          search_asym(col.data(), static_cast<int>(col.size()), 1, *lo, *hi, lay_.levels());
      store_f16(block + lay_.steps_offset() + 2 * j, grid.step);
      store_f16(block + lay_.mins_offset() + 2 * j, grid.min);
      const float step = f16_to_f32(grid.step), min = f16_to_f32(grid.min);
      for (int t = 0; t < n; ++t)
        lay_.put(block, t, j, round_asym(col[t], min, step, lay_.levels()));
    }
  }

  // out: [n][d]
  void decode(int /*head*/, const uint8_t* block, int n, float* out) const override {
    const int d = lay_.d;
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < d; ++j) {
        out[static_cast<size_t>(t) * d + j] =
            static_cast<float>(lay_.get(block, t, j)) * step(block, j) + min(block, j);
      }
    }
  }

  // <q, k_t> = sum_j (q_j step_j) u_tj + sum_j q_j min_j: the query is folded with the page's
  // per-channel steps once, then each token costs one integer-code dot product.
  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    const int d = lay_.d;
    std::vector<double> qs(static_cast<size_t>(d));  // [d] q_j * step_j
    for (int i = 0; i < n_q; ++i) {
      const float* q = qp + static_cast<size_t>(i) * d;
      double bias = 0;
      for (int j = 0; j < d; ++j) {
        qs[j] = static_cast<double>(q[j]) * step(block, j);
        bias += static_cast<double>(q[j]) * min(block, j);
      }
      for (int t = 0; t < n; ++t) {
        double s = bias;
        for (int j = 0; j < d; ++j) s += qs[j] * lay_.get(block, t, j);
        logits[static_cast<size_t>(i) * logits_stride + t] = static_cast<float>(s);
      }
    }
  }

 private:
  float step(const uint8_t* block, int j) const {
    return load_f16(block + lay_.steps_offset() + 2 * j);
  }
  float min(const uint8_t* block, int j) const {
    return load_f16(block + lay_.mins_offset() + 2 * j);
  }

  KiviLayout lay_;
};

template <int Bits>
size_t kivi_payload(int head_dim, int page_tokens) {
  return KiviLayout{head_dim, page_tokens, Bits}.payload();
}

std::string kivi_unsupported(const CodecConfig& config) {
  if (config.head_dim % 8 == 0) return {};
  return "head dim " + std::to_string(config.head_dim) +
         " is not a multiple of 8 (per-channel codes are packed whole bytes per token)";
}

template <int Bits, FormatId id>
std::unique_ptr<Codec> make_kivi(const CodecConfig& config) {
  return std::make_unique<KiviCodec>(info(id), config, Bits);
}

}  // namespace

void add_kivi_formats(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::kivi4, "kivi4", "", kRoleK,
                  "K only: 4-bit per channel over the page's tokens, f16 scale + min (KIVI)",
                  kivi_payload<4>, kivi_unsupported, make_kivi<4, FormatId::kivi4>});
  rows.push_back({FormatId::kivi2, "kivi2", "", kRoleK,
                  "K only: 2-bit per channel over the page's tokens, f16 scale + min (KIVI)",
                  kivi_payload<2>, kivi_unsupported, make_kivi<2, FormatId::kivi2>});
}

}  // namespace kvpack::format
