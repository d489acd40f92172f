// Memory read bandwidth, measured in-process with a streaming read kernel, so benchmarks can
// report their speeds as a share of what this machine delivers right now.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned.h"
#include "base/thread_pool.h"

namespace kvpack {

// A buffer for the probe. Size it well beyond the last-level cache (>= 256 MiB) so the figure
// is DRAM's, not the cache's.
class ReadProbe {
 public:
  explicit ReadProbe(size_t bytes);
  size_t bytes() const { return bytes_; }

  // Best of `passes` passes, each thread of the pool reading its share of the buffer with
  // wide loads; bytes per second.
  double measure(ThreadPool& pool, int passes = 3) const;

  struct Rates {
    double wall = 0;  // bytes per wall-clock second (measure())
    double cpu = 0;   // bytes per (process CPU second / threads): the rate on an idle machine
  };
  // Both rates, each the best of `passes` passes.
  Rates measure_rates(ThreadPool& pool, int passes = 3) const;

 private:
  size_t bytes_;
  AlignedArray<uint8_t> data_;
};

}  // namespace kvpack
