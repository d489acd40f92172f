// SIMD kernels for the float formats (f32, f16, bf16), per Highway target.
// K blocks are channel-major [head_dim][page_tokens]: a tile of 2 vectors of tokens and up to
// kMaxRows query rows accumulates one FMA per (row, vector) per channel, the query channel
// broadcast, so each K element is loaded and widened once per row tile and no horizontal sums
// are needed. V blocks are token-major [page_tokens][head_dim]: a tile of rows x dim-vectors
// keeps its accumulators in registers across the chunk's tokens.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/float_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>

#include "attention/cpu/float_load-inl.h"
#include "attention/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Query rows per register tile; 8 needs 16 accumulators + operands, too many for 16-register
// targets.
constexpr int kMaxRows = HWY_MAX_BYTES >= 64 ? 8 : 4;
// Prefetch addresses one tile may take (32 KiB).
constexpr int kMaxTileLines = 512;

// The prefetches a tile reading `bytes` in `iters` iterations issues: none unless it is the first
// row tile of its block (pf non-null).
struct TilePrefetch {
  const uint8_t* lines[kMaxTileLines];
  LineSchedule schedule;
  TilePrefetch(Prefetcher* pf, size_t bytes, int iters)
      : schedule(lines, pf ? pf->take_lines(bytes, lines, kMaxTileLines) : 0, iters) {}
};

// logits[r][t0 .. t0 + TV*N) for R rows from a channel-major block.
template <typename T, int R, int TV>
HWY_INLINE void ScoreTile(const T* k, int d, int pt, int t0, const float* q, int qs, float* logits,
                          size_t stride, Prefetcher* pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  VF acc[R][TV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < TV; ++v) acc[r][v] = hn::Zero(df);
  }
  // Channels per loop iteration (head dims are multiples of 16 here): amortises the loop and
  // prefetch bookkeeping over 4 x R x TV FMAs.
  constexpr int kUnroll = 4;
  TilePrefetch prefetch(pf, sizeof(T) * TV * N * d, d / kUnroll);
  for (int j0 = 0; j0 < d; j0 += kUnroll) {
    for (int u = 0; u < kUnroll; ++u) {
      const int j = j0 + u;
      VF kv[TV];
      for (int v = 0; v < TV; ++v) kv[v] = LoadAsFloat(df, k + j * pt + t0 + v * N);
      for (int r = 0; r < R; ++r) {
        const VF qv = hn::Set(df, q[r * qs + j]);
        for (int v = 0; v < TV; ++v) acc[r][v] = hn::MulAdd(qv, kv[v], acc[r][v]);
      }
    }
    prefetch.schedule.step();
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < TV; ++v) hn::StoreU(acc[r][v], df, logits + r * stride + t0 + v * N);
  }
}

template <typename T, int R>
HWY_INLINE void ScorePage(const T* k, int d, int pt, const float* q, int qs, float* logits,
                          size_t stride, Prefetcher* pf) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  int t0 = 0;
  for (; t0 + 2 * N <= pt; t0 += 2 * N) ScoreTile<T, R, 2>(k, d, pt, t0, q, qs, logits, stride, pf);
  for (; t0 < pt; t0 += N) ScoreTile<T, R, 1>(k, d, pt, t0, q, qs, logits, stride, pf);
}

// R-row tiles of one block's rows q: [rows][d] into out: [rows][stride].
template <typename T>
HWY_INLINE void ScoreBlock(const T* k, int d, int pt, const float* q, int rows, float* out,
                           size_t stride, Prefetcher& pf) {
  int r = 0;
  Prefetcher* first = &pf;  // only the first row tile advances the cursor
  for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
    ScorePage<T, kMaxRows>(k, d, pt, q + r * d, d, out + r * stride, stride, first);
  }
  if (r + 4 <= rows && kMaxRows > 4) {
    ScorePage<T, 4>(k, d, pt, q + r * d, d, out + r * stride, stride, first);
    r += 4, first = nullptr;
  }
  if (r + 2 <= rows) {
    ScorePage<T, 2>(k, d, pt, q + r * d, d, out + r * stride, stride, first);
    r += 2, first = nullptr;
  }
  if (r < rows) ScorePage<T, 1>(k, d, pt, q + r * d, d, out + r * stride, stride, first);
}

template <typename T>
void ScoreFloat(const BlockSet& b, int d, int pt, const float* q, int rows, float* logits,
                size_t stride, Prefetcher& pf) {
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      ScoreBlock<T>(reinterpret_cast<const T*>(b.at(i, h)), d, pt, q + h * rows * d, rows,
                    logits + h * rows * stride + i * pt, stride, pf);
    }
  }
}

// acc[r][j0 .. j0 + DC*N) += sum_t w[r][t] v[t][...] for R rows over one token-major page.
template <typename T, int R, int DC>
HWY_INLINE void AccTile(const T* v, int d, int pt, int j0, const float* w, size_t ws, float* acc,
                        int as, Prefetcher* pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  VF a[R][DC];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) a[r][c] = hn::LoadU(df, acc + r * as + j0 + c * N);
  }
  TilePrefetch prefetch(pf, sizeof(T) * d * pt, pt);
  for (int t = 0; t < pt; ++t) {
    VF vv[DC];
    for (int c = 0; c < DC; ++c) vv[c] = LoadAsFloat(df, v + t * d + j0 + c * N);
    for (int r = 0; r < R; ++r) {
      const VF wv = hn::Set(df, w[r * ws + t]);
      for (int c = 0; c < DC; ++c) a[r][c] = hn::MulAdd(wv, vv[c], a[r][c]);
    }
    prefetch.schedule.step();
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) hn::StoreU(a[r][c], df, acc + r * as + j0 + c * N);
  }
}

// Dim vectors per tile for R rows: R * DC accumulators stay within half the registers.
constexpr int kAccRegs = HWY_MAX_BYTES >= 64 ? 16 : 8;
template <int R>
constexpr int kDimTile = kAccRegs / R >= 8 ? 8 : kAccRegs / R;

template <typename T, int R>
HWY_INLINE void AccPage(const T* v, int d, int pt, const float* w, size_t ws, float* acc,
                        Prefetcher* pf) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  constexpr int DC = kDimTile<R>;
  int j0 = 0;
  for (; j0 + DC * N <= d; j0 += DC * N, pf = nullptr) {
    AccTile<T, R, DC>(v, d, pt, j0, w, ws, acc, d, pf);
  }
  // Wide tiles (1-2 rows) leave 4-vector tiles before single vectors, whose FMAs would each
  // wait on the previous one's latency (AVX-512 at head dim 64: f16 -11%, bf16 -30% a page).
  if constexpr (DC > 4) {
    for (; j0 + 4 * N <= d; j0 += 4 * N, pf = nullptr) {
      AccTile<T, R, 4>(v, d, pt, j0, w, ws, acc, d, pf);
    }
  }
  for (; j0 < d; j0 += N, pf = nullptr) AccTile<T, R, 1>(v, d, pt, j0, w, ws, acc, d, pf);
}

template <typename T>
HWY_INLINE void AccBlock(const T* v, int d, int pt, const float* w, size_t ws, int rows, float* acc,
                         Prefetcher& pf) {
  int r = 0;
  Prefetcher* first = &pf;
  for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
    AccPage<T, kMaxRows>(v, d, pt, w + r * ws, ws, acc + r * d, first);
  }
  if (r + 4 <= rows && kMaxRows > 4) {
    AccPage<T, 4>(v, d, pt, w + r * ws, ws, acc + r * d, first);
    r += 4, first = nullptr;
  }
  if (r + 2 <= rows) {
    AccPage<T, 2>(v, d, pt, w + r * ws, ws, acc + r * d, first);
    r += 2, first = nullptr;
  }
  if (r < rows) AccPage<T, 1>(v, d, pt, w + r * ws, ws, acc + r * d, first);
}

template <typename T>
void AccumulateFloat(const BlockSet& b, int d, int pt, const float* w, size_t ws, int rows,
                     float* acc, Prefetcher& pf) {
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      AccBlock<T>(reinterpret_cast<const T*>(b.at(i, h)), d, pt, w + h * rows * ws + i * pt, ws,
                  rows, acc + h * rows * d, pf);
    }
  }
}

// fp8: e4m3 codes read as f32 x 2^-8 (float_load-inl.h), times the token's f16 scale x 2^8:
// keys after the dot products, values folded into the weights.
constexpr float kE4M3Unscale = 256.0f;

// scales: where the f16 per-token scales sit in a block (BlockLayout::scales).
void ScoreFP8(const BlockSet& b, int d, int pt, size_t scales_at, const float* q, int rows,
              float* logits, size_t stride, Prefetcher& pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const uint8_t* block = b.at(i, h);
      float* out = logits + h * rows * stride + i * pt;
      ScoreBlock<E4M3>(reinterpret_cast<const E4M3*>(block), d, pt, q + h * rows * d, rows, out,
                       stride, pf);
      // The tiles advanced the prefetch cursor by the codes; the scales follow them.
      pf.advance(b.head_bytes - static_cast<size_t>(pt) * d);
      const auto* scales = reinterpret_cast<const hwy::float16_t*>(block + scales_at);
      for (int t = 0; t < pt; t += N) {
        const VF s = hn::Mul(LoadAsFloat(df, scales + t), hn::Set(df, kE4M3Unscale));
        for (int r = 0; r < rows; ++r) {
          hn::StoreU(hn::Mul(hn::LoadU(df, out + r * stride + t), s), df, out + r * stride + t);
        }
      }
    }
  }
}

void AccumulateFP8(const BlockSet& b, int d, int pt, size_t scales_at, const float* w, size_t ws,
                   int rows, float* acc, Prefetcher& pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kRows = 8;
  HWY_ALIGN float scaled[kRows][256];  // weights x scale x 2^8 of up to kRows rows (pt <= 256)
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const uint8_t* block = b.at(i, h);
      const auto* scales = reinterpret_cast<const hwy::float16_t*>(block + scales_at);
      Prefetcher none;  // rows past the first kRows read the block again: no prefetch
      for (int r0 = 0; r0 < rows; r0 += kRows) {
        const int n = std::min(kRows, rows - r0);
        for (int t = 0; t < pt; t += N) {
          const VF s = hn::Mul(LoadAsFloat(df, scales + t), hn::Set(df, kE4M3Unscale));
          for (int r = 0; r < n; ++r) {
            hn::Store(hn::Mul(hn::LoadU(df, w + (h * rows + r0 + r) * ws + i * pt + t), s), df,
                      scaled[r] + t);
          }
        }
        AccBlock<E4M3>(reinterpret_cast<const E4M3*>(block), d, pt, scaled[0], 256, n,
                       acc + (h * rows + r0) * d, r0 == 0 ? pf : none);
        if (r0 == 0) pf.advance(b.head_bytes - static_cast<size_t>(pt) * d);  // the scales
      }
    }
  }
}

// Per-format entry points (one exported function per element type and role).
#define KVPACK_FLOAT_KERNELS(NAME, T)                                                          \
  void Score##NAME(const BlockSet& b, int d, int pt, const float* q, int rows, float* logits,  \
                   size_t stride, Prefetcher& pf) {                                            \
    ScoreFloat<T>(b, d, pt, q, rows, logits, stride, pf);                                      \
  }                                                                                            \
  void Accumulate##NAME(const BlockSet& b, int d, int pt, const float* w, size_t ws, int rows, \
                        float* acc, Prefetcher& pf) {                                          \
    AccumulateFloat<T>(b, d, pt, w, ws, rows, acc, pf);                                        \
  }
KVPACK_FLOAT_KERNELS(F32, float)
KVPACK_FLOAT_KERNELS(F16, hwy::float16_t)
KVPACK_FLOAT_KERNELS(BF16, hwy::bfloat16_t)
#undef KVPACK_FLOAT_KERNELS

const char* TargetName() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstring>

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreF32);
HWY_EXPORT(ScoreF16);
HWY_EXPORT(ScoreBF16);
HWY_EXPORT(AccumulateF32);
HWY_EXPORT(AccumulateF16);
HWY_EXPORT(AccumulateBF16);
HWY_EXPORT(ScoreFP8);
HWY_EXPORT(AccumulateFP8);
HWY_EXPORT(TargetName);

namespace {

// The prepared query of the float kernels is the scaled f32 query itself.
size_t float_query_bytes(const format::Codec& codec) {
  return static_cast<size_t>(codec.head_dim()) * sizeof(float);
}

void float_prepare(const format::Codec& codec, int /*head*/, const float* q, int rows,
                   size_t q_stride, uint8_t* qbuf) {
  const size_t row = float_query_bytes(codec);
  for (int r = 0; r < rows; ++r) std::memcpy(qbuf + r * row, q + r * q_stride, row);
}

#define KVPACK_FLOAT_ENTRY(NAME)                                                                   \
  void score_##NAME(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows,  \
                    float* logits, size_t stride, Prefetcher& pf) {                                \
    HWY_DYNAMIC_DISPATCH(Score##NAME)                                                              \
    (b, codec.head_dim(), codec.page_tokens(), reinterpret_cast<const float*>(qbuf), rows, logits, \
     stride, pf);                                                                                  \
  }                                                                                                \
  void accumulate_##NAME(const format::Codec& codec, const BlockSet& b, const float* w, size_t ws, \
                         int rows, float* acc, Prefetcher& pf) {                                   \
    HWY_DYNAMIC_DISPATCH(Accumulate##NAME)                                                         \
    (b, codec.head_dim(), codec.page_tokens(), w, ws, rows, acc, pf);                              \
  }
KVPACK_FLOAT_ENTRY(F32)
KVPACK_FLOAT_ENTRY(F16)
KVPACK_FLOAT_ENTRY(BF16)
#undef KVPACK_FLOAT_ENTRY

void score_FP8(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows,
               float* logits, size_t stride, Prefetcher& pf) {
  HWY_DYNAMIC_DISPATCH(ScoreFP8)
  (b, codec.head_dim(), codec.page_tokens(), codec.layout().scales,
   reinterpret_cast<const float*>(qbuf), rows, logits, stride, pf);
}
void accumulate_FP8(const format::Codec& codec, const BlockSet& b, const float* w, size_t ws,
                    int rows, float* acc, Prefetcher& pf) {
  HWY_DYNAMIC_DISPATCH(AccumulateFP8)
  (b, codec.head_dim(), codec.page_tokens(), codec.layout().scales, w, ws, rows, acc, pf);
}

const KKernel kKF32{"simd", 0, 0, float_query_bytes, float_prepare, score_F32};
const KKernel kKF16{"simd", 0, 0, float_query_bytes, float_prepare, score_F16};
const KKernel kKBF16{"simd", 0, 0, float_query_bytes, float_prepare, score_BF16};
const VKernel kVF32{"simd", accumulate_F32};
const VKernel kVF16{"simd", accumulate_F16};
const VKernel kVBF16{"simd", accumulate_BF16};
const KKernel kKFP8{"simd", 0, 0, float_query_bytes, float_prepare, score_FP8};
const VKernel kVFP8{"simd", accumulate_FP8};

// The kernels need whole vectors of tokens (K) and of channels (V); 16 covers every target.
bool simd_geometry(const format::Codec& codec) {
  return codec.page_tokens() % 16 == 0 && codec.head_dim() % 16 == 0;
}

}  // namespace

// The element type read from the layout: the kernels above, for channel-major keys and
// token-major values.
const KKernel* float_k_kernel(const format::Codec& codec) {
  const format::BlockLayout& l = codec.layout();
  if (!simd_geometry(codec) || l.order != format::BlockLayout::Order::channel_major) return nullptr;
  switch (l.element) {
    case format::BlockLayout::Element::f32:
      return &kKF32;
    case format::BlockLayout::Element::f16:
      return &kKF16;
    case format::BlockLayout::Element::bf16:
      return &kKBF16;
    case format::BlockLayout::Element::e4m3:
      return &kKFP8;
    default:
      return nullptr;
  }
}

const VKernel* float_v_kernel(const format::Codec& codec) {
  const format::BlockLayout& l = codec.layout();
  if (!simd_geometry(codec) || l.order != format::BlockLayout::Order::token_major) return nullptr;
  switch (l.element) {
    case format::BlockLayout::Element::f32:
      return &kVF32;
    case format::BlockLayout::Element::f16:
      return &kVF16;
    case format::BlockLayout::Element::bf16:
      return &kVBF16;
    case format::BlockLayout::Element::e4m3:
      return codec.page_tokens() <= 256 ? &kVFP8 : nullptr;
    default:
      return nullptr;
  }
}

const char* simd_target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
