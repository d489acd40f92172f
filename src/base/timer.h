// Wall-clock and CPU timing for benchmarks and progress reports.
#pragma once

#include <time.h>

#include <chrono>

namespace kvpack {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds the whole process has used (all threads). On a shared machine a benchmark's CPU
// time divided by its thread count approximates its wall time on an idle one.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace kvpack
