// The SIMD kernels of src/model: Highway target selection (base/hwy_config.h) and a testing aid
// that runs code once per target. Include this first in a Highway translation unit.
#pragma once

#include "base/hwy_config.h"

#include <functional>

namespace kvpack::model {

// Calls fn(target name) once for every SIMD target this CPU runs and this build compiled, by
// kvpack's names (base/simd_target.h: "avx512-vnni", ..., "avx2", "avx2-novnni", "sse4",
// "scalar"), with dispatch forced to that target; dispatch is back to "best" after. For tests: the
// scalar references are checked against every code path the machine can run, including the AVX2
// kernels with and without AVX-VNNI.
void for_each_simd_target(const std::function<void(const char* target)>& fn);

}  // namespace kvpack::model
