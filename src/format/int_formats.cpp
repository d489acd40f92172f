// q8, q4 and q4a: integer codes with an f16 step (and, for q4a, an f16 min) per group of
// g = group_size(d) values of one token: llama.cpp's q8_0, q4_0 and q4_1 maths.
//
// Head block (one head of one page; T = page_tokens, T4 = T rounded up to a multiple of 4,
// d = head_dim, G = d / g groups per token, b = 8 or 4 bits per code):
//   codes  T4 * d * b / 8 bytes, arranged per role (below)
//   steps  f16[G][T]  at byte offset T4 * d * b / 8 (group-major: 16 tokens' steps of a group
//                     are one contiguous vector for the SIMD kernels)
//   mins   f16[G][T]  right after the steps (q4a only)
// q8:  code byte = int8 k,          x = k * step,         k = round(x / step), step = amax / 127
// q4:  code nibble u = k + 8,       x = (u - 8) * step,   k in -8..7,   step searched (below)
// q4a: code nibble u,               x = u * step + min,   u in 0..15,   step, min searched
// Code arrangement: both roles interleave codes for int8 dot-product instructions, which sum 4
// byte products per 32-bit lane (x86 VPDPBUSD, Arm SDOT); one 64-byte line is 16 lanes x 4.
//   K role (channel-interleaved: a lane is one token, its 4 bytes 4 or 8 channels): q8:
//     [d/4][T][4] bytes, byte (c, t, i) = channel 4c + i of token t; 4-bit: [d/8][T][4] bytes,
//     byte (o, t, i) holds channel 8o + i (low nibble) and 8o + 4 + i (high nibble) of token t.
//   V role (token quads: a lane is one or two channels, its 4 bytes 4 consecutive tokens): q8:
//     [T4/4][d][4] bytes, byte (q, j, i) = channel j of token 4q + i; 4-bit: [T4/4][d/2][4]
//     bytes: within each block of w = 32 channels (the last block of d % 32 channels when d is
//     not a multiple of 32), byte lane l < w/2 holds channel l (low nibble) and l + w/2 (high
//     nibble): byte (q, 16 * block + l, i) of token 4q + i. So one line is 16 channels (q8) or
//     32 channels (4-bit) of 4 tokens, and a value kernel multiplies it by 4 tokens' weights.
//
// q4 and q4a choose their step (and min) by squared error among the grids that hold every value
// within half a step (format/step_search.h): all 16 q4 codes are used; in the K role q4's step is
// signed like ggml's q4_0 d, so the grid's longer side points at the group's extreme (V steps
// stay >= 0 for the value kernels' unsigned weights), but unlike ggml's encoder
// (step = max / -8) nothing is clamped by more than half a step. The decode
// (x = (u - 8) * step) and V byte layout are ggml's. All three formats round against the stored
// f16 step and min (see quant.h), not the unrounded ones as ggml does.
#include <string>

#include "base/aligned.h"
#include "format/families.h"
#include "format/quant.h"
#include "format/step_search.h"

namespace kvpack::format {
namespace {

// Format traits: bits per code, whether the grid has a min, and its top index.
// kSearchN: symmetric codes -n..n-1 with a searched signed step (0: codes -kTop..kTop, plain
// step amax / kTop; q8 keeps it, as its rounding error is already ggml's and code -128 would
// gain 1/255 of range).
struct Q8 {
  static constexpr int kBits = 8;
  static constexpr bool kAsym = false;
  static constexpr int kTop = 127;
  static constexpr int kSearchN = 0;
};
struct Q4 {
  static constexpr int kBits = 4;
  static constexpr bool kAsym = false;
  static constexpr int kTop = 7;
  static constexpr int kSearchN = 8;
};
struct Q4A {
  static constexpr int kBits = 4;
  static constexpr bool kAsym = true;
  static constexpr int kTop = 15;  // levels: indices 0..15 (the step and min are searched)
};

// The byte layout of one head block; every offset and code position is computed here.
template <typename F>
struct GroupLayout {
  int d;     // head dim
  int T;     // page tokens
  int g;     // group size
  bool key;  // K role: channel-interleaved codes

  GroupLayout(int head_dim, int page_tokens, Role role)
      : d(head_dim), T(page_tokens), g(group_size(head_dim)), key(role == Role::K) {}

  int groups() const { return d / g; }
  size_t row_bytes() const { return static_cast<size_t>(d) * F::kBits / 8; }
  size_t steps_offset() const { return round_up(static_cast<size_t>(T), 4) * row_bytes(); }
  size_t mins_offset() const { return steps_offset() + 2 * static_cast<size_t>(T) * groups(); }
  size_t payload() const {
    return F::kAsym ? mins_offset() + (mins_offset() - steps_offset()) : mins_offset();
  }

  // Byte offsets of token t's group gi step and min.
  size_t step_at(int t, int gi) const { return steps_offset() + 2 * (size_t(gi) * T + t); }
  size_t min_at(int t, int gi) const { return mins_offset() + 2 * (size_t(gi) * T + t); }

  // The byte holding value j of token t, and whether it is the high nibble (4-bit codes).
  size_t byte_of(int t, int j, bool* high) const {
    if constexpr (F::kBits == 8) {
      *high = false;
      return key ? (size_t(j) / 4 * T + t) * 4 + j % 4 : (size_t(t) / 4 * d + j) * 4 + t % 4;
    } else {
      if (key) {
        const int p = j % 8;
        *high = p >= 4;
        return (size_t(j) / 8 * T + t) * 4 + p % 4;
      }
      const int block = j / 32, p = j % 32, half = std::min(32, d - 32 * block) / 2;
      *high = p >= half;
      return (size_t(t) / 4 * (d / 2) + 16 * block + p % half) * 4 + t % 4;
    }
  }

  // Grid index of value j of token t: signed for q8/q4, 0..15 for q4a.
  int get(const uint8_t* block, int t, int j) const {
    bool high = false;
    const uint8_t byte = block[byte_of(t, j, &high)];
    if constexpr (F::kBits == 8) {
      return static_cast<int8_t>(byte);
    } else {
      const int u = high ? (byte >> 4) : (byte & 0xf);
      return F::kAsym ? u : u - 8;
    }
  }

  void put(uint8_t* block, int t, int j, int k) const {
    bool high = false;
    uint8_t& byte = block[byte_of(t, j, &high)];
    if constexpr (F::kBits == 8) {
      byte = static_cast<uint8_t>(static_cast<int8_t>(k));
    } else {
      const unsigned u = static_cast<unsigned>(F::kAsym ? k : k + 8);
      byte = high ? static_cast<uint8_t>((byte & 0x0f) | (u << 4))
                  : static_cast<uint8_t>((byte & 0xf0) | u);
    }
  }
};

template <typename F>
class GroupCodec final : public Codec {
 public:
  GroupCodec(const FormatInfo& info, const CodecConfig& config)
      : Codec(info, config), lay_(config.head_dim, config.page_tokens, config.role) {
    layout_.element = BlockLayout::Element::integer;
    layout_.order = lay_.key ? BlockLayout::Order::key_planes : BlockLayout::Order::value_planes;
    layout_.planes[0] = F::kBits;
    layout_.code_offset = F::kBits == 4 && !F::kAsym ? 8 : 0;
    layout_.group = lay_.g;
    layout_.steps = lay_.steps_offset();
    layout_.mins = F::kAsym ? lay_.mins_offset() : BlockLayout::kAbsent;
    layout_.payload = lay_.payload();
  }

  // x: [n][d]. Each token's groups get their own grid.
  void encode(int /*head*/, const float* x, int n, uint8_t* block) const override {
    zero_padding(block, lay_.payload(), head_bytes());
    const int g = lay_.g;
    float v[32];  // one group, saturated into f16's range
    for (int t = 0; t < n; ++t) {
      for (int gi = 0; gi < lay_.groups(); ++gi) {
        float lo = 0, hi = 0, amax = 0;
        for (int p = 0; p < g; ++p) {
          v[p] = saturate_input(x[static_cast<size_t>(t) * lay_.d + gi * g + p]);
          lo = p == 0 ? v[p] : std::min(lo, v[p]);
          hi = p == 0 ? v[p] : std::max(hi, v[p]);
          amax = std::max(amax, std::fabs(v[p]));
        }
        float step, min = 0;
        if constexpr (F::kAsym) {
          const AsymGrid grid = search_asym(v, g, 1, lo, hi, F::kTop);
          store_f16(block + lay_.step_at(t, gi), grid.step);
          store_f16(block + lay_.min_at(t, gi), grid.min);
          step = f16_to_f32(grid.step);
          min = f16_to_f32(grid.min);
        } else {
          const uint16_t s = F::kSearchN ? search_sym_step(v, g, 1, F::kSearchN, lay_.key)
                                         : fit_step(amax, F::kTop, F::kTop + 0.5);
          store_f16(block + lay_.step_at(t, gi), s);
          step = f16_to_f32(s);
        }
        for (int p = 0; p < g; ++p) {
          int k = 0;
          if constexpr (F::kAsym) {
            k = round_asym(v[p], min, step, F::kTop);
          } else if constexpr (F::kSearchN != 0) {
            k = round_sym_signed(v[p], step, F::kSearchN);
          } else {
            k = round_sym(v[p], step, F::kTop);
          }
          lay_.put(block, t, gi * g + p, k);
        }
      }
    }
  }

  // out: [n][d]
  void decode(int /*head*/, const uint8_t* block, int n, float* out) const override {
    const int g = lay_.g;
    for (int t = 0; t < n; ++t) {
      for (int gi = 0; gi < lay_.groups(); ++gi) {
        const float step = load_f16(block + lay_.step_at(t, gi));
        const float min = F::kAsym ? load_f16(block + lay_.min_at(t, gi)) : 0.0f;
        for (int p = 0; p < g; ++p) {
          const int j = gi * g + p;
          out[static_cast<size_t>(t) * lay_.d + j] =
              static_cast<float>(lay_.get(block, t, j)) * step + min;
        }
      }
    }
  }

  // Per group: step * <q, k> (+ min * sum(q)): the integer dot product a kernel does per group.
  void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
             int logits_stride) const override {
    const int g = lay_.g, d = lay_.d;
    for (int i = 0; i < n_q; ++i) {
      const float* q = qp + static_cast<size_t>(i) * d;
      for (int t = 0; t < n; ++t) {
        double s = 0;
        for (int gi = 0; gi < lay_.groups(); ++gi) {
          double dot = 0, qsum = 0;
          for (int p = 0; p < g; ++p) {
            const int j = gi * g + p;
            dot += static_cast<double>(q[j]) * lay_.get(block, t, j);
            qsum += q[j];
          }
          s += load_f16(block + lay_.step_at(t, gi)) * dot;
          if constexpr (F::kAsym) s += load_f16(block + lay_.min_at(t, gi)) * qsum;
        }
        logits[static_cast<size_t>(i) * logits_stride + t] = static_cast<float>(s);
      }
    }
  }

  // acc[i][j] += (w * step) * k + w * min, per token group.
  void accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                  float* acc) const override {
    const int g = lay_.g, d = lay_.d;
    for (int i = 0; i < n_q; ++i) {
      float* a = acc + static_cast<size_t>(i) * d;
      for (int t = 0; t < n; ++t) {
        const float wt = w[static_cast<size_t>(i) * w_stride + t];
        for (int gi = 0; gi < lay_.groups(); ++gi) {
          const float ws = wt * load_f16(block + lay_.step_at(t, gi));
          const float wm = F::kAsym ? wt * load_f16(block + lay_.min_at(t, gi)) : 0.0f;
          for (int p = 0; p < g; ++p) {
            const int j = gi * g + p;
            a[j] += ws * static_cast<float>(lay_.get(block, t, j)) + wm;
          }
        }
      }
    }
  }

 private:
  GroupLayout<F> lay_;
};

template <typename F>
size_t group_payload(int head_dim, int page_tokens) {
  return GroupLayout<F>(head_dim, page_tokens, Role::V).payload();
}

std::string needs_groups(const CodecConfig& config) {
  if (group_size(config.head_dim) != 0) return {};
  return "head dim " + std::to_string(config.head_dim) +
         " is not a multiple of 8 (scale groups of 32, 16 or 8 values never span two heads)";
}

template <typename F, FormatId id>
std::unique_ptr<Codec> make_group(const CodecConfig& config) {
  return std::make_unique<GroupCodec<F>>(info(id), config);
}

}  // namespace

void add_int_formats(std::vector<FormatInfo>& rows) {
  rows.push_back({FormatId::q8, "q8", "q8_0", kRoleK | kRoleV,
                  "int8 symmetric, f16 scale per 32 values (llama.cpp q8_0)", group_payload<Q8>,
                  needs_groups, make_group<Q8, FormatId::q8>});
  rows.push_back({FormatId::q4, "q4", "q4_0", kRoleK | kRoleV,
                  "int4 symmetric, f16 scale per 32 values (llama.cpp q4_0; scale by error)",
                  group_payload<Q4>, needs_groups, make_group<Q4, FormatId::q4>});
  rows.push_back({FormatId::q4a, "q4a", "q4_1", kRoleK | kRoleV,
                  "int4 asymmetric, f16 scale + f16 min per 32 values (llama.cpp q4_1)",
                  group_payload<Q4A>, needs_groups, make_group<Q4A, FormatId::q4a>});
}

}  // namespace kvpack::format
