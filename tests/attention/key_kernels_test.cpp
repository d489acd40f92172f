// The int8-query K kernels against the codecs' own score() fed the query exactly as the kernel
// rounded it (KernelInfo: int8 per group, or per row for the rotated formats). What remains
// between the two is f32 rounding and the int8 centroid table (rotated formats), so the bound is
// tight: a wrong term (a lost factor, a misplaced plane bit) fails here even where the decode
// tests' worst-case query-rounding bound would absorb it. The QJL sign path is also checked
// alone, on blocks whose MSE part is zero (norms 0).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/int_query.h"
#include "attention/kernels.h"
#include "attention/span.h"
#include "base/half.h"
#include "base/rng.h"
#include "format/codebook.h"
#include "format/turbo_layout.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

using format::FormatId;

constexpr double kU = 0x1p-24;

bool rotated(FormatId id) {
  return id == FormatId::turbo2 || id == FormatId::turbo3 || id == FormatId::turbo4 ||
         id == FormatId::turbo3_qjl || id == FormatId::turbo4_qjl;
}
bool qjl(FormatId id) {
  return id == FormatId::turbo3_qjl || id == FormatId::turbo4_qjl;
}
int mse_bits(FormatId id) {
  switch (id) {
    case FormatId::turbo2:
    case FormatId::turbo3_qjl:
      return 2;
    case FormatId::turbo3:
    case FormatId::turbo4_qjl:
      return 3;
    default:
      return 4;
  }
}

struct Case {
  std::unique_ptr<format::Codec> codec;
  const detail::KKernel* kernel;
  std::vector<uint8_t> pages;  // 2 pages of one head
  const uint8_t* blocks[2];
  std::vector<float> q;          // [rows][d] scaled queries
  std::vector<uint8_t> qbuf;     // the kernel's prepared rows
  std::vector<float> effective;  // [rows][query_floats]: what the kernel's rows stand for
};

// The f32 query a prepared row stands for: scale x code per group (one group: the whole part).
void effective_part(const detail::IntQueryLayout& l, const uint8_t* row, float* out) {
  const detail::IntQueryRow r(l, row);
  for (int j = 0; j < l.d; ++j) out[j] = r.scale[j / l.group] * static_cast<float>(r.codes[j]);
}

Case make_case(FormatId id, int d, int rows, bool zero_norms) {
  Case c;
  c.codec = format::make_codec(id, {format::Role::K, d, 32, 1, 11});
  c.kernel = &detail::select_k_kernel(*c.codec, false);
  EXPECT_GT(c.kernel->query_bits, 0) << format::info(id).name;
  Rng rng(static_cast<uint64_t>(d) * 31 + static_cast<uint64_t>(id));
  const size_t hb = c.codec->head_bytes();
  c.pages.resize(2 * hb);
  std::vector<float> x(32 * static_cast<size_t>(d));
  for (int p = 0; p < 2; ++p) {
    for (auto& v : x) v = static_cast<float>(rng.normal());
    c.codec->encode(0, x.data(), 32, c.pages.data() + p * hb);
    if (zero_norms) {  // the QJL term alone: MSE norms 0, gammas as encoded
      for (int t = 0; t < 32; ++t) c.pages[p * hb + 2 * t] = c.pages[p * hb + 2 * t + 1] = 0;
    }
    c.blocks[p] = c.pages.data() + p * hb;
  }
  c.q.resize(static_cast<size_t>(rows) * d);
  for (auto& v : c.q) v = static_cast<float>(rng.normal() * 0.1);
  const size_t qb = c.kernel->query_bytes(*c.codec);
  c.qbuf.resize(rows * qb);
  c.kernel->prepare(*c.codec, 0, c.q.data(), rows, static_cast<size_t>(d), c.qbuf.data());
  const size_t qf = c.codec->query_floats();
  c.effective.assign(rows * qf, 0.0f);
  const int group = c.kernel->query_group > 0 ? c.kernel->query_group : d;
  const detail::IntQueryLayout l{d, group};
  for (int r = 0; r < rows; ++r) {
    effective_part(l, c.qbuf.data() + r * qb, c.effective.data() + r * qf);
    if (qjl(id))
      effective_part(l, c.qbuf.data() + r * qb + l.row_bytes(), &c.effective[r * qf + d]);
  }
  return c;
}

// Bound on |kernel - codec| for one logit: f32 rounding of the dot products, scales and sums,
// and for rotated formats the int8 table, rho * norm * sum_j |q'_j| |c[idx_j]|.
double bound(const Case& c, int r, int page, int t) {
  const format::Codec& codec = *c.codec;
  const int d = codec.head_dim();
  const size_t qf = codec.query_floats();
  const float* qe = &c.effective[r * qf];
  const FormatId id = codec.info().id;
  std::vector<float> k(static_cast<size_t>(32) * d);
  codec.decode(0, c.blocks[page], 32, k.data());
  double abs_dot = 0;
  if (!rotated(id)) {
    for (int j = 0; j < d; ++j) abs_dot += std::fabs(double(c.q[r * d + j]) * k[t * d + j]) * 2;
    return (4 * d + 16) * kU * abs_dot + 1e-30;
  }
  const format::TurboLayout layout{d, 32, mse_bits(id), qjl(id), true};
  std::vector<uint8_t> idx(static_cast<size_t>(d));
  layout.load_codes(c.blocks[page], t, idx.data());
  const format::Codebook& cb = format::codebook(d, mse_bits(id));
  const double norm = f16_to_f32(layout.norm(c.blocks[page], t));
  for (int j = 0; j < d; ++j) abs_dot += std::fabs(qe[j] * cb.centroids[idx[j]]) * norm;
  double sketch = 0;
  if (qjl(id)) {
    const double g =
        f16_to_f32(layout.gamma(c.blocks[page], t)) * std::sqrt(std::acos(-1.0) / 2) / d;
    for (int j = 0; j < d; ++j) sketch += std::fabs(qe[d + j]) * g;
  }
  const double rho = c.kernel->key_rel_error ? c.kernel->key_rel_error(codec) : 0.0;
  return (rho + (4 * d + 16) * kU) * abs_dot * 1.001 + (2 * d + 16) * kU * sketch * 2 + 1e-30;
}

void check(FormatId id, int d, bool zero_norms) {
  const int rows = 5;  // a tile of 4 and a single row
  Case c = make_case(id, d, rows, zero_norms);
  const size_t stride = detail::logit_stride(32) * 2;
  std::vector<float> got(rows * stride), want(rows * stride);
  detail::Prefetcher pf;
  const detail::BlockSet set{c.blocks, 2, 0, 1, c.codec->head_bytes()};
  c.kernel->score(*c.codec, set, c.qbuf.data(), rows, got.data(), stride, pf);
  for (int p = 0; p < 2; ++p) {
    c.codec->score(c.blocks[p], 32, c.effective.data(), rows, want.data() + p * 32,
                   static_cast<int>(stride));
  }
  for (int r = 0; r < rows; ++r) {
    for (int p = 0; p < 2; ++p) {
      for (int t = 0; t < 32; ++t) {
        const size_t at = r * stride + p * 32 + t;
        ASSERT_NEAR(got[at], want[at], bound(c, r, p, t))
            << format::info(id).name << " d " << d << " row " << r << " page " << p << " token "
            << t << (zero_norms ? " (QJL term alone)" : "");
      }
    }
  }
}

// Runs fn on every Highway target this CPU has (head dims 64..256 on the best, 128 on others).
template <typename Fn>
void on_every_target(const Fn& fn) {
  const int64_t all = hwy::SupportedTargets();  // before any override narrows it
  const int64_t best = all & -all;
  for (int64_t bit = 1; bit != 0 && bit <= HWY_SCALAR; bit <<= 1) {
    if ((all & bit) == 0) continue;
    hwy::SetSupportedTargetsForTest(bit);
    fn(bit == best ? std::vector<int>{64, 128, 256} : std::vector<int>{128});
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(KeyKernels, MatchTheCodecOnTheirRoundedQuery) {
  on_every_target([](const std::vector<int>& dims) {
    for (FormatId id :
         {FormatId::q8, FormatId::q4, FormatId::q4a, FormatId::turbo2, FormatId::turbo3,
          FormatId::turbo4, FormatId::turbo3_qjl, FormatId::turbo4_qjl}) {
      for (int d : dims) check(id, d, false);
    }
  });
}

TEST(KeyKernels, QjlSignTermIsExact) {
  on_every_target([](const std::vector<int>& dims) {
    for (FormatId id : {FormatId::turbo3_qjl, FormatId::turbo4_qjl}) {
      for (int d : dims) check(id, d, true);
    }
  });
}

// kivi folds the query with each page's steps and rounds q_j step_j to int8 per group of 32
// (KernelInfo: query_bits 8, query_group 32); the bias sum_j q_j min_j stays f32. The expected
// logit follows that specification in double; what remains is f32 rounding.
void check_kivi(const std::vector<int>& dims) {
  for (FormatId id : {FormatId::kivi4, FormatId::kivi2}) {
    for (int d : dims) {
      const int rows = 5, T = 32, bits = id == FormatId::kivi4 ? 4 : 2;
      auto codec = format::make_codec(id, {format::Role::K, d, T, 1, 0});
      const detail::KKernel& k = detail::select_k_kernel(*codec, false);
      ASSERT_EQ(k.query_group, 32) << k.name;
      Rng rng(static_cast<uint64_t>(d) + bits);
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
      std::vector<float> kd(x.size());
      codec->decode(0, block.data(), T, kd.data());
      const size_t codes = static_cast<size_t>(T) * d * bits / 8;
      const auto at = [&](size_t off) {
        return static_cast<double>(
            f16_to_f32(static_cast<uint16_t>(block[off] | block[off + 1] << 8)));
      };
      for (int r = 0; r < rows; ++r) {
        const float* qr = &q[static_cast<size_t>(r) * d];
        double bias = 0, abs_bias = 0;
        std::vector<double> z(static_cast<size_t>(d)), sc(static_cast<size_t>(d) / 32);
        for (int j = 0; j < d; ++j) {
          bias += double(qr[j]) * at(codes + 2 * (d + j));
          abs_bias += std::fabs(double(qr[j]) * at(codes + 2 * (d + j)));
        }
        for (int g = 0; g < d / 32; ++g) {
          float amax = 0;  // the rounding as specified: f32 products, scale amax / 127
          for (int j = 32 * g; j < 32 * g + 32; ++j) {
            amax = std::fmax(amax, std::fabs(qr[j] * static_cast<float>(at(codes + 2 * j))));
          }
          sc[g] = amax / 127.0f;
          const float inv = amax > 0 ? 127.0f / amax : 0.0f;
          for (int j = 32 * g; j < 32 * g + 32; ++j) {
            const float qs = qr[j] * static_cast<float>(at(codes + 2 * j));
            z[j] = std::nearbyint(qs * inv);
          }
        }
        for (int t = 0; t < T; ++t) {
          double want = bias, mag = abs_bias;
          for (int j = 0; j < d; ++j) {
            const double s = at(codes + 2 * j), m = at(codes + 2 * (d + j));
            const double u = s > 0 ? std::nearbyint((kd[t * d + j] - m) / s) : 0;
            want += static_cast<float>(sc[j / 32]) * z[j] * u;
            mag += std::fabs(sc[j / 32] * z[j] * u);
          }
          ASSERT_NEAR(got[r * stride + t], want, (2 * d + 16) * kU * mag + 1e-30)
              << format::info(id).name << " d " << d << " row " << r << " token " << t << " "
              << k.name;
        }
      }
    }
  }
}

TEST(KeyKernels, KiviMatchesItsSpecification) {
  on_every_target(check_kivi);
}

}  // namespace
}  // namespace kvpack::attention
