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
#include "base/rng.h"
#include "every_target.h"
#include "kernel_expect.h"
#include "kernel_spec.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::on_every_target;

constexpr double kU = 0x1p-24;
constexpr int kPages = 3;  // pages per kernel call (the accumulators carry across them)
constexpr int kSlice = 3;  // heads per page slice; the call reads heads 1 and 2
constexpr int kHeads = 2;

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
void add_block(const testing::ValueBlock& b, const float* w, int T, int d, const KernelInfo& kernel,
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
        const testing::ValueBlock b =
            testing::read_value_block(*codec, 1 + h, slices[p] + (1 + h) * hb);
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
