// Every specialised V kernel against a reference that applies the same roundings, on every SIMD
// target. The integer-weight kernels (KernelInfo::weight_bits > 0) are specified per (page, query
// row, scale group): with a_t the token's step (turbo: its norm) and w_t its weight,
//   A_t = a_t * (1 / max a),  W_t = w_t * (L / max w),  u_t = round(W_t * A_t)  (f32, ties even)
//   c = max w * max a / L,    acc_j += c * post * sum_t u_t e_tj
// with L = 2^bits - 1, e the integer element (q8 code, q4 and q4a nibble - 8, turbo: the int8
// centroid table of the test's own construction, post its scale) and, for q4a, the minimum's
// part sum_t w_t (m_t + 8 a_t) in f32. The reference computes the same u (exactly the same f32
// operations), sums in integers and compares up to f32 rounding; a product within a few ulps of
// a rounding tie may go either way, so such a token may contribute one step of c either way.
// The f32-weight kernels and the float formats add sum_t w_t a_t E_tj with E the exact element
// (for q4a the nibble and the minimum sum_t w_t m_t).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/kernels.h"
#include "base/half.h"
#include "base/rng.h"
#include "every_target.h"
#include "format/codebook.h"
#include "format/turbo_layout.h"
#include "kernel_expect.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::on_every_target;

constexpr double kU = 0x1p-24;
constexpr int kPages = 3;  // pages per kernel call (the accumulators carry across them)
constexpr int kSlice = 3;  // heads per page slice; the call reads heads 1 and 2
constexpr int kHeads = 2;

double f16_at(const uint8_t* p) {
  return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// One head block read at the offsets docs/formats.md gives: per token its factor a_t per scale
// group (step, or turbo's norm), the minimum m_t (q4a), and per channel the exact element E and
// the integer element e of the integer-weight kernels (E = e except q4a: E = nibble, e = nibble
// - 8; turbo: E = centroid, e = int8 table code).
struct BlockReading {
  int groups = 1;
  std::vector<double> a;  // [groups][T]
  std::vector<double> m;  // [groups][T] (q4a), else 0
  std::vector<double> E;  // [T][d]
  std::vector<int> e;     // [T][d]
  double post = 1.0;      // turbo: the int8 table's scale
  bool has_min = false;   // q4a
};

BlockReading read_block(const format::Codec& codec, const uint8_t* block) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens();
  const size_t T4 = (static_cast<size_t>(T) + 3) / 4 * 4;
  BlockReading r;
  r.E.resize(static_cast<size_t>(T) * d);
  r.e.resize(r.E.size());
  if (id == FormatId::f32 || id == FormatId::f16 || id == FormatId::bf16 || id == FormatId::fp8) {
    std::vector<float> x(r.E.size());  // the float formats' decode is exact
    codec.decode(0, block, T, x.data());
    r.E.assign(x.begin(), x.end());
    r.a.assign(static_cast<size_t>(T), 1.0);
    r.m.assign(static_cast<size_t>(T), 0.0);
    return r;
  }
  const int bits = testing::turbo_mse_bits(id);
  if (bits > 0) {
    const format::TurboLayout layout{d, T, bits, false, false};
    const testing::Int8Table table = testing::int8_table(d, bits);
    const format::Codebook& cb = format::codebook(d, bits);
    r.post = table.scale;
    std::vector<uint8_t> idx(static_cast<size_t>(d));
    for (int t = 0; t < T; ++t) {
      r.a.push_back(f16_to_f32(layout.norm(block, t)));
      r.m.push_back(0);
      layout.load_codes(block, t, idx.data());
      for (int j = 0; j < d; ++j) {
        r.E[t * d + j] = cb.centroids[idx[j]];
        r.e[t * d + j] = table.codes[idx[j]];
      }
    }
    return r;
  }
  // q8: int8 [T4/4][d][4] token quads; q4, q4a: [T4/4][d/2][4], byte lane l < 16 of each
  // 32-channel block holding channel l (low nibble) and l + 16 (high). Steps f16 [G][T] after
  // the codes, q4a's mins f16 [G][T] after the steps.
  const bool q8 = id == FormatId::q8;
  r.has_min = id == FormatId::q4a;
  r.groups = d / format::group_size(d);
  const size_t steps = T4 * d * (q8 ? 8 : 4) / 8;
  const size_t mins = steps + 2 * static_cast<size_t>(T) * r.groups;
  for (int g = 0; g < r.groups; ++g) {
    for (int t = 0; t < T; ++t) {
      r.a.push_back(f16_at(block + steps + 2 * (static_cast<size_t>(g) * T + t)));
      r.m.push_back(id == FormatId::q4a ? f16_at(block + mins + 2 * (size_t(g) * T + t)) : 0.0);
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < d; ++j) {
      if (q8) {
        const auto k = static_cast<int8_t>(block[(static_cast<size_t>(t / 4) * d + j) * 4 + t % 4]);
        r.E[t * d + j] = r.e[t * d + j] = k;
        continue;
      }
      const int lane = 16 * (j / 32) + j % 16;
      const uint8_t byte = block[(static_cast<size_t>(t / 4) * (d / 2) + lane) * 4 + t % 4];
      const int u = j % 32 < 16 ? byte & 15 : byte >> 4;
      r.e[t * d + j] = u - 8;
      r.E[t * d + j] = id == FormatId::q4a ? u : u - 8;
    }
  }
  return r;
}

// The spec's integer weights of one (page, row, group): u_t and whether its product sat within
// a few ulps of a tie. Returns c.
float integer_weights(const float* w, const double* a, int T, int bits, std::vector<int64_t>& u,
                      std::vector<bool>& near_tie) {
  const float top = static_cast<float>((1 << bits) - 1);
  float amax = 0, wmax = 0;
  for (int t = 0; t < T; ++t) {
    amax = std::fmax(amax, static_cast<float>(a[t]));
    wmax = std::fmax(wmax, w[t]);
  }
  const float inv_a = amax > 0 ? 1.0f / amax : 0.0f;
  const float inv_w = wmax > 0 ? top / wmax : 0.0f;
  for (int t = 0; t < T; ++t) {
    const float A = static_cast<float>(a[t]) * inv_a, W = w[t] * inv_w;
    const float p = W * A;
    u[t] = static_cast<int64_t>(std::nearbyint(p));
    const double exact = static_cast<double>(W) * A;
    near_tie[t] = std::fabs(exact - std::floor(exact) - 0.5) <= 8 * kU * std::fmax(exact, 1.0);
  }
  return wmax * amax / top;
}

struct Want {
  std::vector<double> value;  // [d]
  std::vector<double> tol;    // [d]
};

// The expected change of one row's accumulator over one block, and its f32 rounding bound.
void add_block(const BlockReading& b, const float* w, int T, int d, const KernelInfo& kernel,
               Want& want) {
  const int g_size = d / b.groups;
  std::vector<int64_t> u(static_cast<size_t>(T));
  std::vector<bool> tie(static_cast<size_t>(T));
  for (int g = 0; g < b.groups; ++g) {
    const double* a = &b.a[static_cast<size_t>(g) * T];
    const double* m = &b.m[static_cast<size_t>(g) * T];
    const bool integer = kernel.weight_bits > 0;
    double mins = 0, mins_abs = 0;  // q4a's minimum part
    for (int t = 0; t < T; ++t) {
      if (!b.has_min) break;
      const double mt = integer ? m[t] + 8 * a[t] : m[t];
      mins += w[t] * mt;
      mins_abs += std::fabs(w[t] * mt);
    }
    const float c = integer ? integer_weights(w, a, T, kernel.weight_bits, u, tie) : 0.0f;
    const double scale = static_cast<double>(static_cast<float>(c * static_cast<float>(b.post)));
    for (int j = g * g_size; j < (g + 1) * g_size; ++j) {
      double sum = 0, mag = 0, ties = 0;
      for (int t = 0; t < T; ++t) {
        if (integer) {
          sum += static_cast<double>(u[t] * b.e[t * d + j]);
          mag += std::fabs(static_cast<double>(u[t] * b.e[t * d + j]));
          if (tie[t]) ties += std::abs(b.e[t * d + j]);
        } else {
          sum += w[t] * a[t] * b.E[t * d + j];
          mag += std::fabs(w[t] * a[t] * b.E[t * d + j]);
        }
      }
      const double add = integer ? scale * sum : sum;
      want.value[j] += add + mins;
      // Integer sums are exact; their conversion, the scale and the add round 3 times. Then
      // the running total rounds.
      // f32 weights: T + 3 roundings of each term's magnitude and T of the running total.
      const double before = std::fabs(want.value[j] - add - mins);
      const double terms = integer ? 3 * kU * std::fabs(scale) * mag
                                   : (T + 3) * kU * (mag + before + std::fabs(want.value[j]));
      want.tol[j] +=
          2 * terms + scale * ties + (T + 4) * kU * mins_abs + kU * std::fabs(want.value[j]);
    }
  }
}

struct Weights {
  const char* name;
  // w for token c of the row: >= 0
  float (*make)(Rng& rng, int c, int row);
};

const Weights kWeights[] = {
    {"uniform", [](Rng& rng, int, int) { return static_cast<float>(rng.uniform()); }},
    {"peaked",
     [](Rng& rng, int c, int row) {
       return c == 5 + row ? 1.0f : static_cast<float>(rng.uniform() * 1e-5);
     }},
    {"softmax-like",
     [](Rng& rng, int, int) { return static_cast<float>(std::exp2(-20 * rng.uniform())); }},
    {"zero rows", [](Rng& rng, int, int row) {
       return row % 2 ? 0.0f : static_cast<float>(rng.uniform() < 0.5 ? 0 : rng.uniform());
     }}};

void check(FormatId id, int d, int T, int rows, bool exact) {
  SCOPED_TRACE(::testing::Message() << format::info(id).name << " d " << d << " T " << T << " rows "
                                    << rows << (exact ? " f32 weights" : ""));
  const auto codec = format::make_codec(id, {format::Role::V, d, T, kSlice, 5});
  Params params;
  params.exact_value_weights = exact;
  const KernelInfo want_info = testing::expected_kernel(*codec, params);
  ASSERT_NE(want_info.name, "codec ops");
  ASSERT_EQ(kernel_info(*codec, params).name.rfind(want_info.name, 0), 0u)
      << kernel_info(*codec, params).name;
  const detail::VKernel& kernel = detail::select_v_kernel(*codec, false, exact);
  Rng rng(static_cast<uint64_t>(d) * 7 + T + static_cast<uint64_t>(id) * 1000 + rows);
  const size_t hb = codec->head_bytes();
  std::vector<uint8_t> pages(kPages * kSlice * hb);
  const uint8_t* slices[kPages];
  std::vector<float> x(static_cast<size_t>(T) * d);
  for (int p = 0; p < kPages; ++p) {
    for (int h = 0; h < kSlice; ++h) {
      for (auto& v : x) v = static_cast<float>(rng.normal() * (0.5 + 4 * rng.uniform()));
      codec->encode(h, x.data(), T, pages.data() + (p * kSlice + h) * hb);
    }
    slices[p] = pages.data() + p * kSlice * hb;
  }
  const size_t ws = static_cast<size_t>(kPages) * T + 16;  // a stride wider than the pages
  const size_t af = codec->acc_floats();
  for (const Weights& wk : kWeights) {
    SCOPED_TRACE(wk.name);
    std::vector<float> w(kHeads * rows * ws);
    for (int r = 0; r < kHeads * rows; ++r) {
      for (size_t c = 0; c < ws; ++c) w[r * ws + c] = wk.make(rng, static_cast<int>(c), r);
    }
    std::vector<float> acc(kHeads * rows * af);
    for (auto& v : acc) v = static_cast<float>(rng.normal());
    std::vector<Want> want(static_cast<size_t>(kHeads) * rows);
    for (int h = 0; h < kHeads; ++h) {
      for (int r = 0; r < rows; ++r) {
        const float* a0 = &acc[(h * rows + r) * af];
        want[h * rows + r].value.assign(a0, a0 + af);
        want[h * rows + r].tol.assign(af, 0.0);
      }
      for (int p = 0; p < kPages; ++p) {
        const BlockReading b = read_block(*codec, slices[p] + (1 + h) * hb);
        for (int r = 0; r < rows; ++r) {
          add_block(b, &w[(h * rows + r) * ws + p * T], T, d, want_info, want[h * rows + r]);
        }
      }
    }
    detail::Prefetcher pf;
    const detail::BlockSet set{slices, kPages, 1, kHeads, hb};
    kernel.accumulate(*codec, set, w.data(), ws, rows, acc.data(), pf);
    for (int i = 0; i < kHeads * rows; ++i) {
      for (size_t j = 0; j < af; ++j) {
        ASSERT_NEAR(acc[i * af + j], want[i].value[j], want[i].tol[j] + 1e-30)
            << "row " << i % rows << " head " << i / rows << " channel " << j;
      }
    }
  }
}

TEST(ValueKernels, IntegerFormatsMatchTheSameRoundingReference) {
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::q8, FormatId::q4, FormatId::q4a, FormatId::turbo4}) {
      for (int d : {64, 128, 256}) {
        for (int rows : {1, 3, 4, 9}) {
          for (bool exact : {false, true}) check(id, d, 32, rows, exact);
        }
      }
      check(id, 96, 16, 5, false);
      check(id, 160, 64, 2, true);
    }
  });
}

TEST(ValueKernels, PlaneFormatsMatchTheSameRoundingReference) {
  // 2-bit planes in 64-channel lines; turbo3's 1-bit plane in 128-channel blocks, the last one
  // of 64 channels where d % 128 == 64 (d 64, 192).
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::turbo2, FormatId::turbo3}) {
      for (int d : {64, 128, 192, 256}) {
        for (bool exact : {false, true}) check(id, d, 32, 5, exact);
      }
      check(id, 128, 16, 4, false);
    }
  });
}

TEST(ValueKernels, FloatFormatsMatchTheReference) {
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::f32, FormatId::f16, FormatId::bf16, FormatId::fp8}) {
      for (int d : {64, 128, 256, 48}) check(id, d, 32, 5, false);
      check(id, 128, 16, 9, false);
    }
  });
}

}  // namespace
}  // namespace kvpack::attention
