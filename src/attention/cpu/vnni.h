// Internal: VPDPBUSD for the AVX3_DL kernels. GCC 12 compiles _mm512_dpbusd_epi32 in loops with
// two register copies per call (it does not tie the accumulator to the destination), doubling the
// instruction count of the dot-product loops; this asm form updates the accumulator in place.
// acc[i] += sum over k < 4 of u[4i + k] (unsigned bytes) * s[4i + k] (signed bytes).
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace kvpack::attention::detail {

__attribute__((always_inline, target("avx512f,avx512vnni"))) inline void dpbusd(__m512i& acc,
                                                                                __m512i u,
                                                                                __m512i s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
}

}  // namespace kvpack::attention::detail
#endif
