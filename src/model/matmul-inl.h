// Per-target kernels of matmul.cpp, compiled once per Highway target (foreach_target.h).
//
// A tile computes R output rows for T tokens over the whole input dim, so each weight block is
// decoded once and used T times (prefill is compute-bound) and each activation vector is loaded
// once for R rows. Every output (r, t) is one accumulator updated in the same order whatever R
// and T are, so matmul of a batch equals matvec of each token bit for bit.
#if defined(KVPACK_MODEL_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_MATMUL_INL_H_
#undef KVPACK_MODEL_MATMUL_INL_H_
#else
#define KVPACK_MODEL_MATMUL_INL_H_
#endif

#include <hwy/highway.h>
#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/half.h"
#include "model/matmul_kernels.h"
#include "model/quant_ref.h"

#if HWY_TARGET == HWY_AVX3_DL
// Highway's AVX3_DL target implies AVX-512 VNNI (its runtime check requires it) but does not
// enable it for the compiler: this target's functions get it added (HWY_AFTER_NAMESPACE pops).
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avx512vnni")
#else
HWY_BEFORE_NAMESPACE();
#endif
namespace kvpack::model::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 f32 lanes, so a 32-value block is a whole number (>= 2) of vectors.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
using DI32 = hn::RebindToSigned<DF>;

// Tile shapes: registers hold R*T accumulators plus R weight vectors (32 registers on AVX-512,
// 16 elsewhere).
constexpr bool kWide = HWY_MAX_BYTES >= 64;
constexpr int kRowsVec = kWide ? 8 : 4;  // matvec (T = 1): R rows in flight hide FMA latency
// The 512-bit VNNI matvec: one row at a time, as the integer kernels' super-block matvec
// (quant/int_kernels-inl.h, kRowsVecOne), with StreamPrefetch (Zen 5, 2 threads, 1 GiB, median of
// 5 alternating runs against 4 rows with the next tile prefetched: Q4_0 35 -> 38 GB/s, Q8_0 49 ->
// 51; 4 rows had been faster than 8, F16's FMA tile lost 10% with 4).
constexpr int kRowsVecVnni = 1;
constexpr int kRowsMat = 4;
constexpr int kTokensMat = kWide ? 4 : 2;

HWY_INLINE float F16ToF32(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(h);  // F16C: exact, like f16_to_f32
#else
  return f16_to_f32(h);
#endif
}

HWY_INLINE float ReduceSum(DF df, VF v) {
  return hn::GetLane(hn::SumOfLanes(df, v));
}

// ---------------------------------------------------------------------------------------------
// f32 path: rows decoded to f32 exactly as dequantize_row_ref. begin(g) selects the g-th group of
// 32 values; load(k) returns values k..k+N-1 of that group; at(j) is value j (tails of float
// rows whose length is not a multiple of 32).

struct RowF32 {
  const float* p = nullptr;
  const float* g_ = nullptr;
  void init(const uint8_t* row) { p = reinterpret_cast<const float*>(row); }
  HWY_INLINE void begin(DF, int64_t g) { g_ = p + g * kQBlock; }
  HWY_INLINE VF load(DF df, size_t k) const { return hn::LoadU(df, g_ + k); }
  HWY_INLINE float at(int64_t j) const { return p[j]; }
};

struct RowF16 {
  const hwy::float16_t* p = nullptr;
  const hwy::float16_t* g_ = nullptr;
  void init(const uint8_t* row) { p = reinterpret_cast<const hwy::float16_t*>(row); }
  HWY_INLINE void begin(DF, int64_t g) { g_ = p + g * kQBlock; }
  HWY_INLINE VF load(DF df, size_t k) const {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), g_ + k));
  }
  HWY_INLINE float at(int64_t j) const { return F16ToF32(reinterpret_cast<const uint8_t*>(p + j)); }
};

struct RowBF16 {
  const hwy::bfloat16_t* p = nullptr;
  const hwy::bfloat16_t* g_ = nullptr;
  void init(const uint8_t* row) { p = reinterpret_cast<const hwy::bfloat16_t*>(row); }
  HWY_INLINE void begin(DF, int64_t g) { g_ = p + g * kQBlock; }
  HWY_INLINE VF load(DF df, size_t k) const {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), g_ + k));
  }
  HWY_INLINE float at(int64_t j) const { return bf16_to_f32(p[j].bits); }
};

struct RowQ8_0 {
  const uint8_t* p = nullptr;
  const int8_t* qs = nullptr;
  float d = 0.0f;
  void init(const uint8_t* row) { p = row; }
  HWY_INLINE void begin(DF, int64_t g) {
    const uint8_t* b = p + g * static_cast<int64_t>(sizeof(BlockQ8_0));
    d = F16ToF32(b);
    qs = reinterpret_cast<const int8_t*>(b + 2);
  }
  HWY_INLINE VF load(DF df, size_t k) const {
    const auto q = hn::PromoteTo(DI32(), hn::LoadU(hn::Rebind<int8_t, DF>(), qs + k));
    return hn::Mul(hn::ConvertTo(df, q), hn::Set(df, d));  // exact: 8-bit q times 11-bit d
  }
  HWY_INLINE float at(int64_t) const { return 0.0f; }  // rows are whole blocks
};

struct RowQ4_0 {
  const uint8_t* p = nullptr;
  const uint8_t* qs = nullptr;
  float d = 0.0f;
  void init(const uint8_t* row) { p = row; }
  HWY_INLINE void begin(DF, int64_t g) {
    const uint8_t* b = p + g * static_cast<int64_t>(sizeof(BlockQ4_0));
    d = F16ToF32(b);
    qs = b + 2;
  }
  HWY_INLINE VF load(DF df, size_t k) const {
    const DI32 di;
    // Values 0..15 are the low nibbles of qs[0..15], values 16..31 the high nibbles (N <= 16).
    auto q = hn::PromoteTo(di, hn::LoadU(hn::Rebind<uint8_t, DF>(), qs + (k & 15)));
    q = k < 16 ? hn::And(q, hn::Set(di, 15)) : hn::ShiftRight<4>(q);
    return hn::Mul(hn::ConvertTo(df, hn::Sub(q, hn::Set(di, 8))), hn::Set(df, d));
  }
  HWY_INLINE float at(int64_t) const { return 0.0f; }
};

// Any other type: each block dequantized by its reference codec (exact, scalar: the generic path
// for types without a SIMD decoder here) into a per-row buffer, one block at a time.
struct RowGeneric {
  const uint8_t* p = nullptr;
  const WeightTypeTraits* tr = nullptr;
  int64_t block_ = -1;
  const float* g_ = nullptr;
  HWY_ALIGN float buf[kQK];
  void init(const uint8_t* row, const WeightTypeTraits* traits) {
    p = row;
    tr = traits;
    block_ = -1;
  }
  HWY_INLINE void begin(DF, int64_t g) {
    const int64_t block = g * kQBlock / tr->block;
    if (block != block_) {
      tr->dequantize(p + block * tr->block_bytes, buf, nullptr, tr->block);
      block_ = block;
    }
    g_ = buf + (g * kQBlock) % tr->block;
  }
  HWY_INLINE VF load(DF df, size_t k) const { return hn::LoadU(df, g_ + k); }
  HWY_INLINE float at(int64_t) const { return 0.0f; }  // rows are whole blocks
};

template <class Row>
HWY_INLINE void InitRow(Row& row, const uint8_t* p, const WeightMatrix&) {
  row.init(p);
}
HWY_INLINE void InitRow(RowGeneric& row, const uint8_t* p, const WeightMatrix& w) {
  row.init(p, &weight_traits(w.type));
}

// Row pointers of a tile: rows past r_end repeat the last valid row (computed, not stored).
template <int R>
HWY_INLINE void TileRows(const WeightMatrix& w, int64_t r0, int64_t r_end, const uint8_t** rows) {
  for (int i = 0; i < R; ++i) rows[i] = w.row(std::min(r0 + i, r_end - 1));
}

template <class Row, int R, int T>
HWY_INLINE void TileF32(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
  const WeightMatrix& w = *job.w;
  const DF df;
  const size_t N = hn::Lanes(df);
  const uint8_t* rows[R];
  TileRows<R>(w, r0, r_end, rows);
  Row rw[R];
  for (int i = 0; i < R; ++i) InitRow(rw[i], rows[i], w);
  const float* xs[T];
  for (int t = 0; t < T; ++t) xs[t] = job.x + (t0 + t) * w.cols;

  VF acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = hn::Zero(df);
  const int64_t groups = w.cols / kQBlock;
  // No NextTilePrefetch: the float rows stream at the read probe's rate without one, and with it
  // F16 at 8192 inputs fell from 47 to 35 GB/s (Zen 5, 2 threads).
  for (int64_t g = 0; g < groups; ++g) {
    for (int i = 0; i < R; ++i) rw[i].begin(df, g);
    for (size_t k = 0; k < static_cast<size_t>(kQBlock); k += N) {
      VF wv[R];
      for (int i = 0; i < R; ++i) wv[i] = rw[i].load(df, k);
      for (int t = 0; t < T; ++t) {
        const VF xv = hn::LoadU(df, xs[t] + g * kQBlock + static_cast<int64_t>(k));
        for (int i = 0; i < R; ++i) acc[i][t] = hn::MulAdd(wv[i], xv, acc[i][t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < R && r0 + i < r_end; ++i) {
      float s = ReduceSum(df, acc[i][t]);
      for (int64_t j = groups * kQBlock; j < w.cols; ++j) s += rw[i].at(j) * xs[t][j];
      job.y[(t0 + t) * w.rows + r0 + i] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Integer path, AVX-512 VNNI: VPDPBUSD multiplies unsigned by signed bytes, so weights are made
// unsigned (Q8_0: w + 128 by flipping the sign bit; Q4_0: the raw nibble q, i.e. w + 8) and the
// offset times the activations is subtracted through the accumulator's start value (bias_lanes),
// so each int32 lane is exactly its 4 values' dot product. Two blocks per 512-bit vector, their
// 4-byte groups interleaved (ActivationsQ8), so the pair of f16 scales is one 32-bit broadcast.
#if HWY_TARGET == HWY_AVX3_DL

// Weights of blocks b and b+1 (zero for b+1 when !kPair) in the interleaved lane order, and the
// scale of each lane's block.
template <bool kQ4, bool kPair>
HWY_INLINE void LoadWeightsVnni(const uint8_t* row, int64_t b, __m512i* wv, __m512* dw) {
  constexpr int64_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const uint8_t* p0 = row + b * kBlockBytes;
  const uint8_t* p1 = p0 + kBlockBytes;
  uint16_t d0, d1 = 0;
  std::memcpy(&d0, p0, 2);
  if constexpr (kPair) std::memcpy(&d1, p1, 2);
  *dw = _mm512_cvtph_ps(_mm256_set1_epi32(static_cast<int>(d0 | (uint32_t{d1} << 16))));
  if constexpr (kQ4) {
    // [v0 | v1]: low nibbles are values 0..15 of each block (groups 0..3), high ones 16..31.
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p0 + 2));
    const __m128i v1 =
        kPair ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1 + 2)) : _mm_setzero_si128();
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(v0), v1, 1);
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(v, mask);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    // Group k of block 0 / block 1: lo lane k / 4 + k for k < 4, hi lane k - 4 / k for k >= 4
    // (hi's lanes are 16.. in the two-source index).
    const __m512i idx = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 16, 20, 17, 21, 18, 22, 19, 23);
    *wv = _mm512_permutex2var_epi32(_mm512_castsi256_si512(lo), idx, _mm512_castsi256_si512(hi));
  } else {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + 2));
    const __m256i hi = kPair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1 + 2))
                             : _mm256_setzero_si256();
    const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i w =
        _mm512_permutex2var_epi32(_mm512_castsi256_si512(lo), idx, _mm512_castsi256_si512(hi));
    *wv = _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
}

// One pair of blocks (b, b+1) of a tile: acc[i][t] += the pair's dot products, scaled.
template <bool kQ4, bool kPair, int R, int T>
HWY_INLINE void StepVnni(const uint8_t* const* rows, const int8_t* const* xq,
                         const int32_t* const* xb, const float* const* xd, int64_t b,
                         __m512 (&acc)[R][T]) {
  __m512i wv[R];
  __m512 dw[R];
  for (int i = 0; i < R; ++i) LoadWeightsVnni<kQ4, kPair>(rows[i], b, &wv[i], &dw[i]);
  for (int t = 0; t < T; ++t) {
    const __m512i xv = _mm512_loadu_si512(xq[t] + b * kQBlock);
    const __m512i bias = _mm512_loadu_si512(xb[t] + b * 8);
    const __m512 dx = _mm512_loadu_ps(xd[t] + b * 8);
    for (int i = 0; i < R; ++i) {
      const __m512i dot = _mm512_dpbusd_epi32(bias, wv[i], xv);
      acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], dx), acc[i][t]);
    }
  }
}

template <bool kQ4, int R, int T>
HWY_INLINE void TileVnni(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
  const WeightMatrix& w = *job.w;
  const uint8_t* rows[R];
  TileRows<R>(w, r0, r_end, rows);
  const ActivationsQ8& a = *job.xq;
  const int8_t* xq[T];
  const float* xd[T];
  const int32_t* xb[T];
  for (int t = 0; t < T; ++t) {
    xq[t] = a.qs_pairs + (t0 + t) * a.n_blocks * kQBlock;
    xd[t] = a.d_lanes + (t0 + t) * a.n_blocks * 8;
    xb[t] = a.bias_lanes + (t0 + t) * a.n_blocks * 8;
  }
  __m512 acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();

  static_assert(T > 1 || R == kRowsVecVnni);
  constexpr int64_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const int64_t nb = w.cols / kQBlock;
  int64_t b = 0;
  const StreamPrefetch ahead(w);
  for (; b + 2 <= nb; b += 2) {
    if constexpr (T == 1) ahead.step(rows[0] + b * kBlockBytes, 2 * kBlockBytes);
    StepVnni<kQ4, true, R, T>(rows, xq, xb, xd, b, acc);
  }
  if (b < nb) StepVnni<kQ4, false, R, T>(rows, xq, xb, xd, b, acc);  // odd count: 2nd is zero
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < R && r0 + i < r_end; ++i) {
      job.y[(t0 + t) * w.rows + r0 + i] = _mm512_reduce_add_ps(acc[i][t]);
    }
  }
}

#endif  // HWY_TARGET == HWY_AVX3_DL

// ---------------------------------------------------------------------------------------------

template <class Row>
struct F32Tiles {
  template <int R, int T>
  static void Run(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
    TileF32<Row, R, T>(job, r0, r_end, t0);
  }
};

// Q8_0/Q4_0 integer dots here only on AVX3_DL (matmul.cpp sends the others to
// quant/int_kernels-inl.h).
template <bool kQ4>
struct Int8Tiles {
  template <int R, int T>
  static void Run(const MatmulJob& job, int64_t r0, int64_t r_end, int64_t t0) {
#if HWY_TARGET == HWY_AVX3_DL
    TileVnni<kQ4, R, T>(job, r0, r_end, t0);
#else
    (void)job, (void)r0, (void)r_end, (void)t0;
    KVPACK_ASSERT(false, "matmul: 512-bit VNNI kernel on another target");
#endif
  }
};

// Rows [r0, r1) for every token: token tiles of kTokensMat, then one token at a time in tiles of
// kRowsV rows.
template <class Tiles, int kRowsV = kRowsVec>
void RunTiles(const MatmulJob& job, int64_t r0, int64_t r1) {
  int64_t t = 0;
  for (; t + kTokensMat <= job.n_tokens; t += kTokensMat) {
    for (int64_t r = r0; r < r1; r += kRowsMat)
      Tiles::template Run<kRowsMat, kTokensMat>(job, r, r1, t);
  }
  for (; t < job.n_tokens; ++t) {
    for (int64_t r = r0; r < r1; r += kRowsV) Tiles::template Run<kRowsV, 1>(job, r, r1, t);
  }
}

void MatmulRows(const MatmulJob& job, int64_t r0, int64_t r1) {
  switch (job.w->type) {
    case GgmlType::F32:
      return RunTiles<F32Tiles<RowF32>>(job, r0, r1);
    case GgmlType::F16:
      return RunTiles<F32Tiles<RowF16>>(job, r0, r1);
    case GgmlType::BF16:
      return RunTiles<F32Tiles<RowBF16>>(job, r0, r1);
    case GgmlType::Q8_0:
      return job.xq ? RunTiles<Int8Tiles<false>, kRowsVecVnni>(job, r0, r1)
                    : RunTiles<F32Tiles<RowQ8_0>>(job, r0, r1);
    case GgmlType::Q4_0:
      return job.xq ? RunTiles<Int8Tiles<true>, kRowsVecVnni>(job, r0, r1)
                    : RunTiles<F32Tiles<RowQ4_0>>(job, r0, r1);
    default:
      // QuantDot::kF32, or the scalar target's integer path (job.x dequantized activations);
      // other integer dots run in quant/int_kernels-inl.h.
      KVPACK_ASSERT(job.xq == nullptr && job.xi == nullptr, "matmul: integer job for {}",
                    static_cast<int>(job.w->type));
      return RunTiles<F32Tiles<RowGeneric>>(job, r0, r1);
  }
}

// roundf: nearest, ties away from zero (v - trunc(v) is exact).
HWY_INLINE VF RoundHalfAway(DF df, VF v) {
  const VF t = hn::Trunc(v);
  const auto up = hn::Ge(hn::Abs(hn::Sub(v, t)), hn::Set(df, 0.5f));
  return hn::Add(t, hn::IfThenElseZero(up, hn::CopySignToAbs(hn::Set(df, 1.0f), v)));
}

// Quantizes each token's row to q8_0 exactly as quantize_row_q8_0_ref; fills the VNNI layout on
// that target. `offset` is what the VNNI kernel adds to the weights (128 for Q8_0, 8 for Q4_0).
void QuantizeActivations(const float* x, int64_t n_tokens, int64_t cols, int offset,
                         const ActivationsQ8& a) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const int64_t nb = cols / kQBlock;
  for (int64_t t = 0; t < n_tokens; ++t) {
    int8_t* qs = a.qs + t * a.n_blocks * kQBlock;
    float* d = a.d + t * a.n_blocks;
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * cols + b * kQBlock;
      VF amax = hn::Zero(df);
      bool finite = true;
      for (size_t k = 0; k < static_cast<size_t>(kQBlock); k += N) {
        const VF v = hn::LoadU(df, xb + k);
        finite = finite && hn::AllTrue(df, hn::IsFinite(v));
        amax = hn::Max(amax, hn::Abs(v));
      }
      int8_t* q = qs + b * kQBlock;
      const float dd = hn::GetLane(hn::MaxOfLanes(df, amax)) / 127.0f;
      const uint16_t dh = f32_to_f16(dd);
      if (!finite || (dh & 0x7c00u) == 0x7c00u) {  // as quantize_row_q8_0_ref: NaN, zero quants
        d[b] = NAN;
        std::memset(q, 0, kQBlock);
        continue;
      }
      const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
      d[b] = f16_to_f32(dh);
      for (size_t k = 0; k < static_cast<size_t>(kQBlock); k += N) {
        const VF v = RoundHalfAway(df, hn::Mul(hn::LoadU(df, xb + k), hn::Set(df, id)));
        const hn::Rebind<int8_t, DF> d8;
        hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(DI32(), v)), d8, q + k);
      }
    }
    for (int64_t b = nb; b < a.n_blocks; ++b) {  // padding
      d[b] = 0.0f;
      std::memset(qs + b * kQBlock, 0, kQBlock);
    }
    if (a.qs_pairs == nullptr) continue;
    for (int64_t pair = 0; pair < a.n_blocks / 2; ++pair) {
      const int64_t at = t * a.n_blocks / 2 + pair;
      for (int lane = 0; lane < 16; ++lane) {
        const int8_t* g = qs + (2 * pair + (lane & 1)) * kQBlock + 4 * (lane >> 1);
        std::memcpy(a.qs_pairs + at * 64 + 4 * lane, g, 4);
        a.bias_lanes[at * 16 + lane] = -offset * (g[0] + g[1] + g[2] + g[3]);
        a.d_lanes[at * 16 + lane] = d[2 * pair + (lane & 1)];
      }
    }
  }
}

// Whether this target's integer kernel reads the VNNI layout (qs_pairs, d_lanes, bias_lanes).
bool WantsVnniLayout() {
  return HWY_TARGET == HWY_AVX3_DL;
}

}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
