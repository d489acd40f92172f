// Per-target integer matmul kernels for the quantized weight types (matmul_int.cpp dispatches
// here), written once over the decoders of quant/decode-inl.h and the dot policies of
// quant/int_dot-inl.h.
//
// A tile computes R output rows for T tokens over the whole input dim: each weight block is
// decoded once and used for T tokens (prefill), each activation vector loaded once for R rows.
// Every output (r, t) is one accumulator updated in the same order whatever R and T are, so a
// batch gives exactly the matvec result of each token.
//
// Numerics, per output: integer sums are exact; per super-block (or 32-value block) the sum is
// converted to f32 (exact below 2^24, else one rounding) and added times the f32 product of the
// weight and activation scales (one rounding each); types with a min add their min part the
// same way, separately. docs/weights.md derives the bound the tests use from this.
#if defined(KVPACK_MODEL_QUANT_INT_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_QUANT_INT_KERNELS_INL_H_
#undef KVPACK_MODEL_QUANT_INT_KERNELS_INL_H_
#else
#define KVPACK_MODEL_QUANT_INT_KERNELS_INL_H_
#endif

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <utility>

#include "base/error.h"
#include "base/simd_target.h"
#include "model/matmul_kernels.h"
#include "model/quant/decode-inl.h"
#include "model/quant/int_dot-inl.h"
#include "model/quant/wide_kquant-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
#if HWY_TARGET == HWY_SCALAR
// One-lane vectors: matmul.cpp runs its generic path (weights dequantized by their reference
// codec, activations quantized and dequantized again) instead of these kernels.
bool HasIntKernels() {
  return false;
}
void MatmulRowsInt(const MatmulJob&, int64_t, int64_t) {
  KVPACK_ASSERT(false, "integer kernels on the scalar target");
}
int IntBiasOffset(GgmlType) {
  return 0;
}
const char* IntDotName() {
  return "none";
}
void QuantizeInt(const float*, int64_t, int64_t, const IntActivations&) {
  KVPACK_ASSERT(false, "integer kernels on the scalar target");
}
#else
bool HasIntKernels() {
  return true;
}

// Tile shapes: registers hold R*T accumulators (two per pair for the super-block types) plus R
// weight vectors and their scales (32 registers on AVX-512 targets, 16 elsewhere).
constexpr bool kManyRegs = HWY_TARGET <= HWY_AVX3;
// matvec (T = 1) of the 32-value types but Q8_0: 4 rows on every target, the next tile's rows
// prefetched (NextTilePrefetch), so the tile need not keep many streams in flight itself. 8 on
// AVX-512 measured slower once it was, when every type's matvec had such tiles (Zen 5,
// avx512-vnni, 2 threads, 1 GiB, three runs each: Q4_1, IQ4_NL, IQ4_XS 5-15% faster with 4).
constexpr int kRowsVec = 4;
// The matvec of the super-block types, and of Q8_0, reads one row at a time instead: the rows
// are contiguous, so the matvec is one sequential stream, kept in flight by StreamPrefetch, and
// a super-block's decoding costs more than loading its activations again for each row (from L1).
// Zen 5, 2 threads, 1 GiB, median of 4 alternating runs against 4-row tiles, GB/s: avx2 (VNNI)
// Q4_K 33 -> 37, Q5_K 31 -> 38, Q6_K 32 -> 40, Q2_K 19 -> 20, Q3_K 17 -> 18, Q8_0 41 -> 46;
// avx2-novnni Q4_K 36 -> 41, Q5_K 34 -> 41, Q6_K 34 -> 40, Q8_0 42 -> 47. The other 32-value
// types lost (Q4_1 27 -> 17, Q5_1 23 -> 19, IQ4_NL 29 -> 27, IQ4_XS 19 -> 12, Q4_0 32 -> 24 on
// avx2; Q5_0 26 -> 28): unpacking their nibbles and scales is most of their time.
constexpr int kRowsVecOne = 1;
constexpr int kRowsMat = kManyRegs ? 4 : 2;
constexpr int kTokensMat = 4;

// Prefetch: each matvec tile asks for the next tile's rows (NextTilePrefetch), the bytes right
// after its own. Not 1 KiB ahead within each row: that cost up to half the speed on AMD Zen 5
// (Q6_K 10.9 -> 24 GB/s without it, Q4_K 12.6 -> 21.7, Q5_1 16 -> 19.7, 2 threads).

template <int N, class F>
HWY_INLINE void Unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
  }
  (std::make_integer_sequence<int, N>{});
}

// Row pointers of a tile: rows past r_end repeat the last valid row (computed, not stored).
template <int R>
HWY_INLINE void IntTileRows(const WeightMatrix& w, int64_t r0, int64_t r_end,
                            const uint8_t** rows) {
  for (int i = 0; i < R; ++i) rows[i] = w.row(std::min(r0 + i, r_end - 1));
}

template <int R, int T>
HWY_INLINE void StoreTile(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0,
                          VF32 (&acc)[R][T]) {
  const WeightMatrix& w = *job.w;
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < R && r0 + i < r_end; ++i) {
      job.y[(t0 + t) * w.rows + r0 + i] = hn::GetLane(hn::SumOfLanes(DF32(), acc[i][t]));
    }
  }
}

// sum_g mn[g] * bsum[g] over a super-block's kGroups groups (16 or 8), spread over int32 lanes.
template <int kGroups>
HWY_INLINE VI32 MinSums(const int16_t* mn, const int16_t* bsum) {
  const hn::CappedTag<int16_t, kGroups> d16;
  const hn::RepartitionToWide<decltype(d16)> d32;
  auto sum0 = hn::Zero(d32), sum1 = hn::Zero(d32);
  for (size_t k = 0; k < static_cast<size_t>(kGroups); k += hn::Lanes(d16)) {
    sum0 = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, mn + k), hn::LoadU(d16, bsum + k),
                                         sum0, sum1);
  }
  const auto sum = hn::Add(sum0, sum1);
  if constexpr (hn::MaxLanes(d32) == hn::MaxLanes(DI32())) {
    return sum;
  } else {
    return hn::ZeroExtendVector(DI32(), sum);
  }
}

// Token t's q8_K activations as the super-block tiles read them: quants, the scale of each 32
// (one per super-block repeated), and the sums of each of Dec's groups.
template <class Dec>
struct KActs {
  const int8_t* qs;
  const float* d32;
  const int16_t* sums;
};
template <class Dec>
HWY_INLINE KActs<Dec> KActsOf(const IntActivations& a, int64_t t) {
  return {a.qs + t * a.cols, a.d32 + t * (a.cols / 32),
          (Dec::kGroup == 16 ? a.sum16 : a.sum32) + t * (a.cols / Dec::kGroup)};
}

// One super-block's integer sum (isum, and the min or offset sums against the activations' group
// sums) added to a tile accumulator: offset types subtract off * scale * bsum exactly, in
// integers; then one f32 FMA by d * dx (and one by dmin * dx for the types with a min). TileK and
// TileKWide share it, which keeps the 512-bit matvec bit-identical with the generic tile.
template <class Dec>
HWY_INLINE VF32 AddSuperBlock(VF32 acc, VI32 isum, VI32 mins, float d, float dmin, float dx) {
  const DF32 df;
  if constexpr (!Dec::kMin) isum = hn::Sub(isum, mins);
  acc = hn::MulAdd(hn::ConvertTo(df, isum), hn::Set(df, d * dx), acc);
  if constexpr (Dec::kMin)
    acc = hn::NegMulAdd(hn::ConvertTo(df, mins), hn::Set(df, dmin * dx), acc);
  return acc;
}

// Super-block types (q8_K activations).
template <class Dec, class Dot, int R, int T>
HWY_INLINE void TileK(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
  const WeightMatrix& w = *job.w;
  const DF32 df;
  const uint8_t* rows[R];
  IntTileRows<R>(w, r0, r_end, rows);
  KActs<Dec> x[T];
  for (int t = 0; t < T; ++t) x[t] = KActsOf<Dec>(*job.xi, t0 + t);
  VF32 acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = hn::Zero(df);

  static_assert(T > 1 || R == kRowsVecOne);
  const int64_t n_sb = w.cols / kQK;
  const StreamPrefetch ahead(w);
  for (int64_t sb = 0; sb < n_sb; ++sb) {
    if constexpr (T == 1) ahead.step(rows[0] + sb * Dec::kBytes, Dec::kBytes);
    SuperScales s[R];
    const uint8_t* blk[R];
    for (int i = 0; i < R; ++i) {
      blk[i] = rows[i] + sb * Dec::kBytes;
      // The block's first line is asked for before its scales, which Q3_K and Q6_K keep in their
      // last line: the rows' misses then go out in address order, which the hardware prefetchers
      // follow (Zen 5, 2 threads: Q6_K 10.8 -> 15.4 GB/s on avx512 and 11.9 -> 15.9 on avx2, Q3_K
      // 7.0 -> 9.1 on avx2; the others within the runs' spread).
      hwy::Prefetch(blk[i]);
      Dec::template Scales<Dot>(blk[i], s[i]);
    }
    VI32 isum[R][T];
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < T; ++t) isum[i][t] = hn::Zero(DI32());
    Unroll<static_cast<int>(kQK / kW)>([&](auto c) {
      constexpr int C = decltype(c)::value;
      VU8 u[R];
      VI32 sc[R];
      for (int i = 0; i < R; ++i) {
        u[i] = Dec::template Chunk<C>(blk[i]);
        sc[i] = ChunkScales<Dec::kGroup, C>(s[i]);
      }
      for (int t = 0; t < T; ++t) {
        const VI8 q = hn::LoadU(DI8(), x[t].qs + sb * kQK + C * static_cast<int64_t>(kW));
        for (int i = 0; i < R; ++i) isum[i][t] = Dot::ScaledDot(isum[i][t], u[i], q, sc[i]);
      }
    });
    for (int t = 0; t < T; ++t) {
      const float dx = x[t].d32[sb * 8];
      for (int i = 0; i < R; ++i) {
        constexpr int kGroups = kQK / Dec::kGroup;
        const VI32 mins = MinSums<kGroups>(s[i].mn, x[t].sums + sb * kGroups);
        acc[i][t] = AddSuperBlock<Dec>(acc[i][t], isum[i][t], mins, s[i].d, s[i].dmin, dx);
      }
    }
  }
  StoreTile<R, T>(job, r0, r_end, t0, acc);
}

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
// TileK<Dec, Dot, 1, 1> with 512-bit vectors (quant/wide_kquant-inl.h): the matvec of Q6_K (and
// Q4_K / Q5_K with VNNI) on AVX-512, bit-identical with the generic tile. Like it, one row at a
// time (kRowsVecOne), the activations loaded (and shuffled) again per row, from L1. Zen 5, 2
// threads, 1 GiB, avx512-vnni, median of 6 alternating runs against the 4-row tile it was:
// Q4_K 42 -> 48 GB/s, Q5_K 42 -> 49, Q6_K 45 -> 52.
template <class Dec>
HWY_INLINE void TileKWide(const MatmulJob& job, int64_t r, int64_t t0) {
  const WeightMatrix& w = *job.w;
  constexpr int kGroups = kQK / Dec::kGroup;
  const KActs<Dec> a = KActsOf<Dec>(*job.xi, t0);
  const int64_t n_sb = w.cols / kQK;
  const StreamPrefetch ahead(w);
  const uint8_t* row = w.row(r);
  VF32 acc = hn::Zero(DF32());
  for (int64_t sb = 0; sb < n_sb; ++sb) {
    const uint8_t* blk = row + sb * Dec::kBytes;
    ahead.step(blk, Dec::kBytes);
    __m512i x[4];
    WideActivations<Dec>(a.qs + sb * kQK, x);
    const WideDot d = WideSuperBlock<Dec>(blk, a.sums + sb * kGroups, x);
    acc = AddSuperBlock<Dec>(acc, d.isum, d.mins, d.d, d.dmin, a.d32[sb * 8]);
  }
  job.y[t0 * w.rows + r] = hn::GetLane(hn::SumOfLanes(DF32(), acc));
}
#endif

// 32-value block types (q8_0 activations; IQ4_XS groups with q8_K ones).
template <class Dec, class Dot, int R, int T>
HWY_INLINE void Tile32(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
  const WeightMatrix& w = *job.w;
  const IntActivations& a = *job.xi;
  const DF32 df;
  const DI32 di32;
  constexpr bool kSignTrick = Dec::kSigned && Dot::kSignTrick;
  const uint8_t* rows[R];
  IntTileRows<R>(w, r0, r_end, rows);
  const int8_t* xq[T];
  const float* xd[T];
  const int32_t* xb[T];
  const float* xm[T];
  for (int t = 0; t < T; ++t) {
    xq[t] = a.qs + (t0 + t) * a.cols;
    xd[t] = a.d32 + (t0 + t) * (a.cols / 32);
    xb[t] = a.bias4 == nullptr ? nullptr : a.bias4 + (t0 + t) * (a.cols / 4);
    xm[t] = a.xs4 == nullptr ? nullptr : a.xs4 + (t0 + t) * (a.cols / 4);
  }
  VF32 acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = hn::Zero(df);

  constexpr int64_t kLanes = static_cast<int64_t>(kW) / 4;  // int32 lanes per vector
  const int64_t n_blocks = w.cols / kQBlock;
  constexpr bool kOneRow = T == 1 && R == 1;
  static_assert(!kOneRow || Dec::kType != GgmlType::IQ4_XS);  // its blocks are 32 of 256 bytes
  const NextTilePrefetch next(w, r0, T == 1 && !kOneRow ? R : 0, n_blocks);
  const StreamPrefetch ahead(w);
  for (int64_t b = 0; b < n_blocks; ++b) {
    if constexpr (kOneRow) {
      ahead.step(rows[0] + b * Dec::kBytes, Dec::kBytes);
    } else if constexpr (T == 1) {
      next.step(b);
    }
    VU8 u[R][kVecs];
    VI8 sw[R][kVecs];
    float dw[R], mw[R];
    for (int i = 0; i < R; ++i) {
      Dec::Block(rows[i], b, u[i], sw[i], &dw[i], &mw[i]);
      if constexpr (Dec::kSigned && !kSignTrick) {
        // VNNI and portable: signed weights as u = w + 128; bias4 removes 128 * sum(x).
        for (int v = 0; v < kVecs; ++v)
          u[i][v] = hn::Xor(hn::BitCast(DU8(), sw[i][v]), Bytes(0x80));
      }
    }
    for (int t = 0; t < T; ++t) {
      VI8 x[kVecs];
      for (int v = 0; v < kVecs; ++v)
        x[v] = hn::LoadU(DI8(), xq[t] + b * kQBlock + v * static_cast<int64_t>(kW));
      VI32 start = hn::Zero(di32);
      if constexpr (!kSignTrick && (Dec::kSigned || Dec::kOffset != 0)) {
        for (int v = 0; v < kVecs; ++v)
          start = hn::Add(start, hn::LoadU(di32, xb[t] + (b * kVecs + v) * kLanes));
      }
      VF32 xs = hn::Zero(df);
      if constexpr (Dec::kMin) {
        for (int v = 0; v < kVecs; ++v)
          xs = hn::Add(xs, hn::LoadU(df, xm[t] + (b * kVecs + v) * kLanes));
      }
      const VF32 dx = hn::Set(df, xd[t][b]);
      for (int i = 0; i < R; ++i) {
        VI32 s = start;
        for (int v = 0; v < kVecs; ++v) {
          if constexpr (kSignTrick) {
            s = Dot::DotSigned(s, sw[i][v], x[v]);
          } else {
            s = Dot::Dot(s, u[i][v], x[v]);
          }
        }
        acc[i][t] = hn::MulAdd(hn::ConvertTo(df, s), hn::Mul(hn::Set(df, dw[i]), dx), acc[i][t]);
        if constexpr (Dec::kMin) acc[i][t] = hn::MulAdd(hn::Set(df, mw[i]), xs, acc[i][t]);
      }
    }
  }
  StoreTile<R, T>(job, r0, r_end, t0, acc);
}

template <class Dec, class Dot>
struct KTiles {
  static constexpr int kMatvecRows = kRowsVecOne;
  template <int R, int T>
  static void Run(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
    if constexpr (T == 1 && kHasWideMatvec<Dec>) {
      static_assert(R == 1);
      return TileKWide<Dec>(job, r0, t0);
    }
#endif
    TileK<Dec, Dot, R, T>(job, r0, r_end, t0);
  }
};

template <class Dec, class Dot>
struct Tiles32 {
  static constexpr int kMatvecRows = Dec::kType == GgmlType::Q8_0 ? kRowsVecOne : kRowsVec;
  template <int R, int T>
  static void Run(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
    Tile32<Dec, Dot, R, T>(job, r0, r_end, t0);
  }
};

// Rows [r0, r1) for every token: token tiles of kTokensMat, then one token at a time in tiles
// of Tiles::kMatvecRows rows.
template <class Tiles>
HWY_NOINLINE void RunIntTiles(const MatmulJob& job, int64_t r0, int64_t r1) {
  int64_t t = 0;
  for (; t + kTokensMat <= job.n_tokens; t += kTokensMat) {
    for (int64_t r = r0; r < r1; r += kRowsMat) {
      Tiles::template Run<kRowsMat, kTokensMat>(job, r, r1, t);
    }
  }
  for (; t < job.n_tokens; ++t) {
    for (int64_t r = r0; r < r1; r += Tiles::kMatvecRows) {
      Tiles::template Run<Tiles::kMatvecRows, 1>(job, r, r1, t);
    }
  }
}

template <class Dot>
void MatmulRowsIntWith(const MatmulJob& job, int64_t r0, int64_t r1) {
  switch (job.w->type) {
    case GgmlType::Q2_K:
      return RunIntTiles<KTiles<DecQ2K, Dot> >(job, r0, r1);
    case GgmlType::Q3_K:
      return RunIntTiles<KTiles<DecQ3K, Dot> >(job, r0, r1);
    case GgmlType::Q4_K:
      return RunIntTiles<KTiles<DecQ4K, Dot> >(job, r0, r1);
    case GgmlType::Q5_K:
      return RunIntTiles<KTiles<DecQ5K, Dot> >(job, r0, r1);
    case GgmlType::Q6_K:
      return RunIntTiles<KTiles<DecQ6K, Dot> >(job, r0, r1);
    case GgmlType::Q8_0:
      return RunIntTiles<Tiles32<Dec32<GgmlType::Q8_0>, Dot> >(job, r0, r1);
    case GgmlType::Q4_0:
      return RunIntTiles<Tiles32<Dec32<GgmlType::Q4_0>, Dot> >(job, r0, r1);
    case GgmlType::Q4_1:
      return RunIntTiles<Tiles32<Dec32<GgmlType::Q4_1>, Dot> >(job, r0, r1);
    case GgmlType::Q5_0:
      return RunIntTiles<Tiles32<Dec32<GgmlType::Q5_0>, Dot> >(job, r0, r1);
    case GgmlType::Q5_1:
      return RunIntTiles<Tiles32<Dec32<GgmlType::Q5_1>, Dot> >(job, r0, r1);
    case GgmlType::IQ4_NL:
      return RunIntTiles<Tiles32<Dec32<GgmlType::IQ4_NL>, Dot> >(job, r0, r1);
    case GgmlType::IQ4_XS:
      return RunIntTiles<Tiles32<Dec32<GgmlType::IQ4_XS>, Dot> >(job, r0, r1);
    default:
      KVPACK_ASSERT(false, "integer matmul: weight type {}", static_cast<int>(job.w->type));
  }
}

void MatmulRowsInt(const MatmulJob& job, int64_t r0, int64_t r1) {
  WithDot([&](auto dot) { MatmulRowsIntWith<decltype(dot)>(job, r0, r1); });
}

// What the kernel of type t adds to its weights, which bias4 removes: the unsigned types' offset,
// and 128 for signed weights where the policy makes them unsigned.
int IntBiasOffset(GgmlType t) {
  return WithDot([&](auto dot) {
    constexpr bool kSignTrick = decltype(dot)::kSignTrick;
    switch (t) {
      case GgmlType::Q4_0:
        return 8;
      case GgmlType::Q5_0:
        return 16;
      case GgmlType::Q8_0:
      case GgmlType::IQ4_NL:
      case GgmlType::IQ4_XS:
        return kSignTrick ? 0 : 128;
      default:
        return 0;
    }
  });
}

const char* IntDotName() {
  return WithDot([](auto dot) { return decltype(dot)::kName; });
}

#endif  // HWY_TARGET == HWY_SCALAR
}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
