// Every specialised K kernel against a reference that applies the same roundings, on every SIMD
// target: the prepared query must be the int8 rounding the spec states (checked element by
// element), the int8 centroid table must be the one its spec builds from the codebook, and the
// logits must then equal the exact dot products of those integers with the stored codes up to
// f32 rounding. Nothing here reads an error figure the kernels report about themselves: a lost
// factor, a misplaced plane bit or an all-zero output fails. The QJL sign path is also checked
// alone, on blocks whose MSE part is zero (norms 0).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/int_query.h"
#include "attention/kernels.h"
#include "attention/span.h"
#include "attention/turbo_table.h"
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
constexpr int kT = 32;     // page tokens
constexpr int kPages = 2;  // pages per kernel call
constexpr int kSlice = 3;  // heads per page slice; the call reads heads 1 and 2
constexpr int kHeads = 2;

bool qjl(FormatId id) {
  return id == FormatId::turbo3_qjl || id == FormatId::turbo4_qjl;
}

struct Case {
  std::unique_ptr<format::Codec> codec;
  const detail::KKernel* kernel = nullptr;
  std::vector<uint8_t> pages;  // [kPages][kSlice heads]
  const uint8_t* slices[kPages];
  std::vector<float> q;          // [kHeads][rows][d] scaled queries
  std::vector<uint8_t> qbuf;     // the kernel's prepared rows
  std::vector<float> effective;  // [kHeads][rows][query_floats]: what the rows stand for
};

// The prepared part of a row against the spec's rounding of x: [n] (testing::round_to_int8);
// returns the f32 values it stands for in out: [n].
void check_rounded(const float* x, int n, const detail::IntQueryRow& got, int group, float* out) {
  std::vector<int> codes(static_cast<size_t>(n));
  std::vector<float> scales(static_cast<size_t>(n / group));
  testing::round_to_int8(x, n, group, codes.data(), scales.data(), out);
  for (int g = 0; g < n / group; ++g) {
    ASSERT_EQ(got.scale[g], scales[g]) << "group " << g;
    int sum = 0;
    for (int j = g * group; j < (g + 1) * group; ++j) {
      ASSERT_EQ(got.codes[j], codes[j]) << "channel " << j;
      ASSERT_EQ(got.fcodes[j], static_cast<float>(codes[j])) << "channel " << j;
      sum += codes[j];
    }
    ASSERT_EQ(got.sum[g], sum) << "group " << g;
  }
}

Case make_case(FormatId id, int d, int rows, bool zero_norms) {
  Case c;
  c.codec = format::make_codec(id, {format::Role::K, d, kT, kSlice, 11});
  c.kernel = &detail::select_k_kernel(*c.codec, false);
  const KernelInfo want = testing::expected_kernel(*c.codec);
  EXPECT_EQ(kernel_info(*c.codec).name.rfind(want.name, 0), 0u) << want.name;
  Rng rng(static_cast<uint64_t>(d) * 31 + static_cast<uint64_t>(id));
  const size_t hb = c.codec->head_bytes();
  c.pages.resize(kPages * kSlice * hb);
  std::vector<float> x(kT * static_cast<size_t>(d));
  for (int p = 0; p < kPages; ++p) {
    for (int h = 0; h < kSlice; ++h) {
      for (auto& v : x) v = static_cast<float>(rng.normal() * (1 + 3 * rng.uniform()));
      uint8_t* block = c.pages.data() + (p * kSlice + h) * hb;
      c.codec->encode(h, x.data(), kT, block);
      if (zero_norms) std::memset(block, 0, 2 * kT);  // the QJL term alone: MSE norms 0
    }
    c.slices[p] = c.pages.data() + p * kSlice * hb;
  }
  c.q.resize(static_cast<size_t>(kHeads) * rows * d);
  for (auto& v : c.q) v = static_cast<float>(rng.normal() * 0.1);
  const size_t qb = c.kernel->query_bytes(*c.codec);
  c.qbuf.resize(kHeads * rows * qb);
  const size_t qf = c.codec->query_floats();
  c.effective.assign(kHeads * rows * qf, 0.0f);
  for (int h = 0; h < kHeads; ++h) {
    c.kernel->prepare(*c.codec, 1 + h, c.q.data() + h * rows * d, rows, static_cast<size_t>(d),
                      c.qbuf.data() + h * rows * qb);
  }
  if (want.query_bits == 0) {  // float kernels: the prepared row is the query itself
    EXPECT_EQ(std::memcmp(c.qbuf.data(), c.q.data(), c.q.size() * sizeof(float)), 0);
    c.effective = c.q;
    return c;
  }
  EXPECT_EQ(want.query_bits, 8);
  const int group = want.query_group > 0 ? want.query_group : d;
  const detail::IntQueryLayout l{d, group};
  std::vector<float> spec(qf);  // the query in the format's basis: Pi q (and S q) for turbo
  for (int h = 0; h < kHeads; ++h) {
    for (int r = 0; r < rows; ++r) {
      const size_t row = static_cast<size_t>(h) * rows + r;
      c.codec->prepare_query(1 + h, &c.q[row * d], spec.data());
      const uint8_t* prepared = c.qbuf.data() + row * qb;
      check_rounded(spec.data(), d, detail::IntQueryRow(l, prepared), group,
                    &c.effective[row * qf]);
      if (qjl(id)) {
        check_rounded(spec.data() + d, d, detail::IntQueryRow(l, prepared + l.row_bytes()), d,
                      &c.effective[row * qf + d]);
      }
    }
  }
  return c;
}

void check(FormatId id, int d, int rows, bool zero_norms) {
  SCOPED_TRACE(::testing::Message() << format::info(id).name << " d " << d << " rows " << rows
                                    << (zero_norms ? " (QJL term alone)" : ""));
  Case c = make_case(id, d, rows, zero_norms);
  if (::testing::Test::HasFatalFailure()) return;
  const size_t stride = detail::logit_stride(kT) * kPages;
  std::vector<float> got(kHeads * rows * stride, std::nanf(""));
  detail::Prefetcher pf;
  const detail::BlockSet set{c.slices, kPages, 1, kHeads, c.codec->head_bytes()};
  c.kernel->score(*c.codec, set, c.qbuf.data(), rows, got.data(), stride, pf);
  const size_t qf = c.codec->query_floats();
  double largest = 0;
  for (int h = 0; h < kHeads; ++h) {
    for (int r = 0; r < rows; ++r) {
      const size_t row = static_cast<size_t>(h) * rows + r;
      for (int p = 0; p < kPages; ++p) {
        std::vector<double> logit(kT), magnitude(kT);
        testing::SpecQuery sq;
        sq.effective.assign(&c.effective[row * qf], &c.effective[row * qf] + qf);
        sq.scaled.assign(&c.q[row * d], &c.q[row * d] + d);
        testing::spec_logits(*c.codec, testing::expected_kernel(*c.codec), 1 + h,
                             c.slices[p] + (1 + h) * c.codec->head_bytes(), sq, logit.data(),
                             magnitude.data());
        for (int t = 0; t < kT; ++t) {
          const struct { double logit, magnitude; } e{logit[t], magnitude[t]};
          // The f32 sums of the kernels: at most d + 16 roundings of partial sums and scale
          // products, each relative to the sum of the terms' magnitudes.
          const double tol = (d + 16) * kU * e.magnitude * 2 + 1e-30;
          const float g = got[row * stride + p * kT + t];
          ASSERT_NEAR(g, e.logit, tol)
              << "head " << h << " row " << r << " page " << p << " token " << t;
          largest = std::fmax(largest, std::fabs(e.logit));
        }
      }
    }
  }
  if (!zero_norms) {
    EXPECT_GT(largest, 0.0);  // the data is not trivially zero
  }
}

const FormatId kKeyFormats[] = {FormatId::f32,    FormatId::f16,        FormatId::bf16,
                                FormatId::fp8,    FormatId::q8,         FormatId::q4,
                                FormatId::q4a,    FormatId::turbo2,     FormatId::turbo3,
                                FormatId::turbo4, FormatId::turbo3_qjl, FormatId::turbo4_qjl};

TEST(KeyKernels, MatchTheSameRoundingReference) {
  on_every_target([](const std::string&, bool) {
    for (FormatId id : kKeyFormats) {
      for (int d : {64, 128, 256}) {
        for (int rows : {1, 4, 5, 9}) check(id, d, rows, false);
      }
    }
  });
}

TEST(KeyKernels, MatchAtHeadDimsOf16Channels) {
  // Head dims that are not multiples of 32: integer formats use 16-channel query groups,
  // turbo4's 4-bit planes read lines of 8 channels.
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::q8, FormatId::q4, FormatId::q4a, FormatId::turbo2,
                        FormatId::turbo4, FormatId::f16}) {
      for (int d : {48, 80, 112}) check(id, d, 5, false);
    }
    check(FormatId::turbo4, 40, 3, false);
    check(FormatId::turbo4_qjl, 40, 3, false);
  });
}

TEST(KeyKernels, QjlSignTermIsExact) {
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::turbo3_qjl, FormatId::turbo4_qjl}) {
      for (int d : {64, 128, 256}) check(id, d, 5, true);
    }
  });
}

TEST(KeyKernels, Int8TablesAreTheirSpec) {
  // The kernels' table (attention/turbo_table.h) is the test's own construction from the
  // codebook, and its error is small: it enters every turbo logit.
  for (int bits = 1; bits <= 4; ++bits) {
    for (int d : {8, 40, 64, 128, 192, 256}) {
      const testing::Int8Table want = testing::int8_table(d, bits);
      const detail::TurboTable& got = detail::turbo_table(d, bits);
      EXPECT_EQ(got.scale, want.scale) << "bits " << bits << " d " << d;
      for (int i = 0; i < 16; ++i) {
        EXPECT_EQ(got.codes[i], want.codes[i]) << "bits " << bits << " d " << d << " i " << i;
        EXPECT_EQ(int{got.biased[i]}, want.codes[i] + 128);
      }
      EXPECT_NEAR(got.rel_error, want.rel_error, 1e-12);
      // The best of 32 scales leaves under 1.5% on every centroid, the smallest included.
      EXPECT_LT(want.rel_error, 0.015) << "bits " << bits << " d " << d;
    }
  }
}

// kivi folds the query with each page's steps and rounds q_j step_j to int8 per group of 32
// (query_bits 8, query_group 32); the bias sum_j q_j min_j stays f32 (kernel_spec.cpp).
void check_kivi(FormatId id, int d) {
  SCOPED_TRACE(::testing::Message() << format::info(id).name << " d " << d);
  const int rows = 5, T = 32;
  auto codec = format::make_codec(id, {format::Role::K, d, T, 1, 0});
  const detail::KKernel& k = detail::select_k_kernel(*codec, false);
  const KernelInfo want_info = testing::expected_kernel(*codec);
  ASSERT_EQ(want_info.query_group, 32);
  ASSERT_EQ(kernel_info(*codec).name.rfind(want_info.name, 0), 0u);
  Rng rng(static_cast<uint64_t>(d) + static_cast<uint64_t>(id));
  std::vector<float> x(static_cast<size_t>(T) * d), q(static_cast<size_t>(rows) * d);
  for (auto& v : x) v = static_cast<float>(rng.normal() * (1 + 3 * rng.uniform()));
  for (auto& v : q) v = static_cast<float>(rng.normal() * 0.1);
  std::vector<uint8_t> block(codec->head_bytes());
  codec->encode(0, x.data(), T, block.data());
  std::vector<uint8_t> qbuf(rows * k.query_bytes(*codec));
  k.prepare(*codec, 0, q.data(), rows, static_cast<size_t>(d), qbuf.data());
  const size_t stride = detail::logit_stride(T);
  std::vector<float> got(rows * stride);
  const uint8_t* blocks[1] = {block.data()};
  detail::Prefetcher pf;
  k.score(*codec, detail::BlockSet{blocks, 1, 0, 1, codec->head_bytes()}, qbuf.data(), rows,
          got.data(), stride, pf);
  std::vector<double> logit(T), magnitude(T);
  for (int r = 0; r < rows; ++r) {
    const testing::SpecQuery sq = testing::spec_query(*codec, want_info, 0, &q[r * d]);
    testing::spec_logits(*codec, want_info, 0, block.data(), sq, logit.data(), magnitude.data());
    for (int t = 0; t < T; ++t) {
      ASSERT_NEAR(got[r * stride + t], logit[t], (2 * d + 16) * kU * magnitude[t] + 1e-30)
          << "row " << r << " token " << t << " " << k.name;
    }
  }
}

TEST(KeyKernels, KiviMatchesItsSpecification) {
  on_every_target([](const std::string&, bool) {
    for (FormatId id : {FormatId::kivi4, FormatId::kivi2}) {
      for (int d : {64, 128, 256}) check_kivi(id, d);
    }
  });
}

}  // namespace
}  // namespace kvpack::attention
