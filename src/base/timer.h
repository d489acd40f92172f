// Wall-clock timing for benchmarks and progress reports.
#pragma once

#include <chrono>

namespace kvpack {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace kvpack
