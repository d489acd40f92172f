// Per-target integer dot products of the weight kernels (quant/int_kernels-inl.h), compiled once
// per Highway target. Vectors are at most 256 bits (CappedTag): on Intel the 256-bit VPDPBUSD
// issues on two ports and the 512-bit one on one, so the wider form gains nothing here, and one
// 32-value block fits one vector.
//
// A policy multiplies unsigned weight bytes u by signed activation bytes x:
//   Dot(acc, u, x)            acc[i] + sum_{k<4} u[4i+k] x[4i+k]  (exact int32)
//   ScaledDot(acc, u, x, sc)  acc + those sums times per-lane scales (ScaleLane's format), where
//                             the lane sums fit int16 (|sum| <= 32767: u <= 63 with |x| <= 127)
//   DotSigned(acc, w, x)      signed weights, only where kSignTrick (see below)
// Policies, chosen per call by the dispatcher:
//   DotVnniEvex   AVX3_DL: VPDPBUSD / VPDPWSSD (EVEX). Highway 1.0.3 has neither instruction.
//   DotVnniVex    AVX2 with AVX-VNNI (avx_vnni_allowed()): the same instructions, VEX-encoded.
//   DotMaddubs    SSE4, AVX2 without VNNI, AVX3: PMADDUBSW (pairs into int16, saturating; exact
//                 for u <= 128, |x| <= 127) then PMADDWD. Signed weights (Q8_0, IQ4) would
//                 saturate as u = w + 128, so they use the sign trick: |w| times x with w's sign.
//   DotPortable   EMU128 (and any non-x86 target): plain lane loops, exact for any u.
// Activations never hold -128 (the quantizers clamp to [-127, 127]), which the sign trick needs.
#if defined(KVPACK_MODEL_QUANT_INT_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_QUANT_INT_DOT_INL_H_
#undef KVPACK_MODEL_QUANT_INT_DOT_INL_H_
#else
#define KVPACK_MODEL_QUANT_INT_DOT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstdint>

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors: matmul.cpp's generic path instead

using DU8 = hn::CappedTag<uint8_t, 32>;
using DI8 = hn::RebindToSigned<DU8>;
using DI16 = hn::Repartition<int16_t, DU8>;
using DI32 = hn::Repartition<int32_t, DU8>;
using DF32 = hn::Repartition<float, DU8>;
using VU8 = hn::Vec<DU8>;
using VI8 = hn::Vec<DI8>;
using VI16 = hn::Vec<DI16>;
using VI32 = hn::Vec<DI32>;
using VF32 = hn::Vec<DF32>;

// Bytes per vector: 32 (AVX2, AVX3) or 16 (SSE4, EMU128).
constexpr size_t kW = hn::MaxLanes(DU8());
static_assert(kW == 16 || kW == 32, "the kernels assume 128- or 256-bit vectors");

struct DotPortable {
  static constexpr bool kSignTrick = false;
  static constexpr const char* kName = "portable";
  static HWY_INLINE VI32 Dot(VI32 acc, VU8 u, VI8 x) {
    HWY_ALIGN uint8_t ub[kW];
    HWY_ALIGN int8_t xb[kW];
    HWY_ALIGN int32_t ab[kW / 4];
    hn::Store(u, DU8(), ub);
    hn::Store(x, DI8(), xb);
    hn::Store(acc, DI32(), ab);
    for (size_t i = 0; i < kW / 4; ++i) {
      for (size_t k = 0; k < 4; ++k) ab[i] += int32_t{ub[4 * i + k]} * int32_t{xb[4 * i + k]};
    }
    return hn::Load(DI32(), ab);
  }
  static HWY_INLINE VI32 ScaledDot(VI32 acc, VU8 u, VI8 x, VI32 sc) {
    return hn::Add(acc, hn::Mul(Dot(hn::Zero(DI32()), u, x), sc));
  }
  static HWY_INLINE VI32 DotSigned(VI32 acc, VI8, VI8) { return acc; }  // unused: no sign trick
  static constexpr uint32_t ScaleLane(int sc) { return static_cast<uint32_t>(sc); }
};

#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR

// The raw intrinsics for the vector widths kW allows.
HWY_INLINE __m128i Maddubs(__m128i u, __m128i x) {
  return _mm_maddubs_epi16(u, x);
}
HWY_INLINE __m128i Madd(__m128i a, __m128i b) {
  return _mm_madd_epi16(a, b);
}
HWY_INLINE __m128i SignBytes(__m128i x, __m128i w) {
  return _mm_sign_epi8(x, w);
}
HWY_INLINE __m128i AbsBytes(__m128i w) {
  return _mm_abs_epi8(w);
}
#if HWY_TARGET <= HWY_AVX2
HWY_INLINE __m256i Maddubs(__m256i u, __m256i x) {
  return _mm256_maddubs_epi16(u, x);
}
HWY_INLINE __m256i Madd(__m256i a, __m256i b) {
  return _mm256_madd_epi16(a, b);
}
HWY_INLINE __m256i SignBytes(__m256i x, __m256i w) {
  return _mm256_sign_epi8(x, w);
}
HWY_INLINE __m256i AbsBytes(__m256i w) {
  return _mm256_abs_epi8(w);
}
#endif

struct DotMaddubs {
  static constexpr bool kSignTrick = true;
  static constexpr const char* kName = "maddubs";
  static HWY_INLINE VI32 Dot(VI32 acc, VU8 u, VI8 x) {
    const auto pairs = Maddubs(u.raw, x.raw);  // int16: u[2j] x[2j] + u[2j+1] x[2j+1]
    return hn::Add(acc, VI32{Madd(pairs, hn::Set(DI16(), 1).raw)});
  }
  static HWY_INLINE VI32 ScaledDot(VI32 acc, VU8 u, VI8 x, VI32 sc) {
    // sc holds each int16 lane's scale (ScaleLane), so PMADDWD scales and adds the pairs.
    return hn::Add(acc, VI32{Madd(Maddubs(u.raw, x.raw), sc.raw)});
  }
  static HWY_INLINE VI32 DotSigned(VI32 acc, VI8 w, VI8 x) {
    return Dot(acc, VU8{AbsBytes(w.raw)}, VI8{SignBytes(x.raw, w.raw)});
  }
  static constexpr uint32_t ScaleLane(int sc) { return static_cast<uint16_t>(sc) * 0x10001u; }
};

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
// VPDPBUSD acc += u x (4-byte groups) and VPDPWSSD acc += a.lo b.lo + a.hi b.hi (int16 pairs),
// as asm: GCC 12 gives the intrinsics a register copy per call in loops, and the AVX2 target
// could not use the VEX forms' intrinsics without the avxvnni attribute on every caller. The
// {evex} / {vex} prefixes pin the encoding: AVX-512 VNNI CPUs need not have AVX-VNNI.
#if HWY_TARGET == HWY_AVX3_DL
#define KVPACK_VNNI_PREFIX "%{evex%} "
#define KVPACK_VNNI_REG "v"
#else
#define KVPACK_VNNI_PREFIX "%{vex%} "
#define KVPACK_VNNI_REG "x"
#endif

HWY_INLINE __m256i Dpbusd(__m256i acc, __m256i u, __m256i x) {
  asm(KVPACK_VNNI_PREFIX "vpdpbusd %2, %1, %0"
      : "+" KVPACK_VNNI_REG(acc)
      : KVPACK_VNNI_REG(u), KVPACK_VNNI_REG(x));
  return acc;
}
HWY_INLINE __m128i Dpbusd(__m128i acc, __m128i u, __m128i x) {
  asm(KVPACK_VNNI_PREFIX "vpdpbusd %2, %1, %0"
      : "+" KVPACK_VNNI_REG(acc)
      : KVPACK_VNNI_REG(u), KVPACK_VNNI_REG(x));
  return acc;
}
HWY_INLINE __m256i Dpwssd(__m256i acc, __m256i a, __m256i b) {
  asm(KVPACK_VNNI_PREFIX "vpdpwssd %2, %1, %0"
      : "+" KVPACK_VNNI_REG(acc)
      : KVPACK_VNNI_REG(a), KVPACK_VNNI_REG(b));
  return acc;
}
HWY_INLINE __m128i Dpwssd(__m128i acc, __m128i a, __m128i b) {
  asm(KVPACK_VNNI_PREFIX "vpdpwssd %2, %1, %0"
      : "+" KVPACK_VNNI_REG(acc)
      : KVPACK_VNNI_REG(a), KVPACK_VNNI_REG(b));
  return acc;
}
#undef KVPACK_VNNI_PREFIX
#undef KVPACK_VNNI_REG

struct DotVnni {
  static constexpr bool kSignTrick = false;
  static constexpr const char* kName = "vnni";
  static HWY_INLINE VI32 Dot(VI32 acc, VU8 u, VI8 x) { return VI32{Dpbusd(acc.raw, u.raw, x.raw)}; }
  static HWY_INLINE VI32 ScaledDot(VI32 acc, VU8 u, VI8 x, VI32 sc) {
    // The group sums fit int16 (the caller's contract), so their high halves are 0 or -1 and
    // multiply sc's zero high halves.
    return VI32{Dpwssd(acc.raw, Dpbusd(hn::Zero(DI32()).raw, u.raw, x.raw), sc.raw)};
  }
  static HWY_INLINE VI32 DotSigned(VI32 acc, VI8, VI8) { return acc; }  // unused: no sign trick
  static constexpr uint32_t ScaleLane(int sc) { return static_cast<uint16_t>(sc); }
};
#endif  // AVX3_DL or AVX2

#endif  // x86 SIMD targets

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
