// Highway target selection shared by the SIMD kernels of src/model, and a testing aid that runs
// code once per target. Include this first in a Highway translation unit (before any hwy header).
#pragma once

// Build the AVX-512 VNNI target (Highway 1.0.3 leaves it out unless asked). SSSE3-only CPUs use
// the portable baseline; SVE is left out because the kernels keep vectors in arrays, which
// sizeless SVE types do not allow (Arm uses NEON).
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif

#include <functional>

namespace kvpack::model {

// Calls fn(target name) once for every SIMD target compiled into the model kernels and supported
// by this CPU, with dynamic dispatch pinned to that target; normal dispatch is restored after.
// For tests: the scalar references are checked against every code path the machine can run.
void for_each_simd_target(const std::function<void(const char* target)>& fn);

}  // namespace kvpack::model
