// Per-target helper: 256-bit integer dot products for the AVX2 kernels (also compiled into the
// AVX3 target, whose 512-bit VNNI instructions it lacks: Skylake-X and Cascade Lake run these).
// Each 32-bit lane of the accumulator adds 4 products of bytes (VPDPBUSD's shape) or 2 of
// int16 (VPDPWSSD's). kVnni uses AVX-VNNI's VEX-encoded instructions (Alder Lake and later,
// Zen 4+, and this project's Xeon; src/base/simd_target.h: avx_vnni_allowed()); without it the
// same sums are VPMADDUBSW + VPMADDWD (bytes) or VPMADDWD (int16), whose int16 pair sums must not
// saturate, which each helper states as its operand bound.
// Included by Highway kernel files after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_INT8_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_INT8_DOT_INL_H_
#undef KVPACK_ATTENTION_INT8_DOT_INL_H_
#else
#define KVPACK_ATTENTION_INT8_DOT_INL_H_
#endif

#include <hwy/highway.h>

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {

// acc[i] += sum over k < 4 of u[4i + k] * s[4i + k]: u unsigned bytes, s signed. Without VNNI
// the byte pairs are summed in int16 first, so 2 max(u) max|s| must not exceed 32767: callers
// pass codes below 16 or 0/1 bits against int8 queries.
template <bool kVnni>
HWY_INLINE void DotU8(__m256i& acc, __m256i u, __m256i s) {
  if constexpr (kVnni) {
    asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(s));
  } else {
    const __m256i pairs = _mm256_maddubs_epi16(u, s);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
}

// acc[i] += sum over k < 4 of a[4i + k] * b[4i + k], both signed bytes in -127..127 (never
// -128). VNNI reads a as the unsigned a + 128 (XOR 0x80), so the caller starts acc at
// -128 * sum(b) (kS8Bias); without VNNI b's sign moves onto a (VPSIGNB) and |b| is the unsigned
// operand: pairs stay within 2 x 127 x 127.
template <bool kVnni>
inline constexpr int kS8Bias = kVnni ? 128 : 0;

template <bool kVnni>
HWY_INLINE void DotS8(__m256i& acc, __m256i a, __m256i b) {
  if constexpr (kVnni) {
    const __m256i u = _mm256_xor_si256(a, _mm256_set1_epi8(static_cast<char>(0x80)));
    asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(b));
  } else {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(b), _mm256_sign_epi8(a, b));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
}

// acc[i] += a[2i] b[2i] + a[2i + 1] b[2i + 1], int16 lanes (no bound beyond int32's).
template <bool kVnni>
HWY_INLINE void DotS16(__m256i& acc, __m256i a, __m256i b) {
  if constexpr (kVnni) {
    asm("%{vex%} vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
  } else {
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
}

// Four bytes from p broadcast to every 32-bit lane.
HWY_INLINE __m256i Broadcast4(const void* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#endif  // KVPACK_ATTENTION_INT8_DOT_INL_H_
