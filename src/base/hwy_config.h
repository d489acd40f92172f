// Highway target selection shared by every SIMD translation unit of kvpack. Include this first
// (before any hwy header).
//
// Build the AVX-512 VNNI target (Highway 1.0.3 leaves it out unless asked). SSSE3-only CPUs use
// the portable baseline; SVE is left out because the kernels keep vectors in arrays, which
// sizeless SVE types do not allow (Arm uses NEON).
#pragma once

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif
