// The SIMD kernels of src/model: Highway target selection (base/hwy_config.h) and a testing aid
// that runs code once per target. Include this first in a Highway translation unit.
#pragma once

#include "base/hwy_config.h"

#include <functional>

namespace kvpack::model {

// Calls fn(target name) once for every SIMD target compiled into the model kernels and supported
// by this CPU, with dynamic dispatch pinned to that target; normal dispatch is restored after.
// For tests: the scalar references are checked against every code path the machine can run.
void for_each_simd_target(const std::function<void(const char* target)>& fn);

}  // namespace kvpack::model
