// The streaming read kernel of ReadProbe, per Highway target: XOR-folds 64-bit lanes with four
// independent accumulators (no FP latency chain) so only memory limits it.
#include "base/hwy_config.h"  // first: the Highway targets every kvpack kernel is built for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "base/read_bandwidth.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "base/read_bandwidth.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

uint64_t ReadFold(const uint64_t* p, size_t n) {
  const hn::ScalableTag<uint64_t> d;
  const size_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Xor(a0, hn::Load(d, p + i));
    a1 = hn::Xor(a1, hn::Load(d, p + i + N));
    a2 = hn::Xor(a2, hn::Load(d, p + i + 2 * N));
    a3 = hn::Xor(a3, hn::Load(d, p + i + 3 * N));
  }
  const auto all = hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3));
  uint64_t r = 0;
  for (size_t j = 0; j < N; ++j) r ^= hn::ExtractLane(all, j);
  for (; i < n; ++i) r ^= p[i];
  return r;
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <cstring>

#include "base/timer.h"

namespace kvpack {

HWY_EXPORT(ReadFold);

ReadProbe::ReadProbe(size_t bytes)
    : bytes_(round_up(bytes, 4096)), data_(make_aligned<uint8_t>(bytes_)) {
  // Touch every page with non-zero data so the kernel reads real, resident memory.
  for (size_t i = 0; i < bytes_; i += 64) data_[i] = static_cast<uint8_t>(i >> 6);
}

double ReadProbe::measure(ThreadPool& pool, int passes) const {
  return measure_rates(pool, passes).wall;
}

ReadProbe::Rates ReadProbe::measure_rates(ThreadPool& pool, int passes) const {
  const auto* words = reinterpret_cast<const uint64_t*>(data_.get());
  const size_t n = bytes_ / sizeof(uint64_t);
  const int n_threads = pool.size();
  std::atomic<uint64_t> sink{0};
  Rates best;
  for (int pass = 0; pass < passes; ++pass) {
    const double t0 = now_seconds();
    const double c0 = process_cpu_seconds();
    pool.parallel_for(n_threads, [&](int64_t task, int) {
      // 64-byte aligned slices, one per thread.
      const size_t begin = n * task / n_threads / 8 * 8;
      const size_t end = task + 1 == n_threads ? n : n * (task + 1) / n_threads / 8 * 8;
      sink.fetch_xor(HWY_DYNAMIC_DISPATCH(ReadFold)(words + begin, end - begin),
                     std::memory_order_relaxed);
    });
    best.wall = std::max(best.wall, static_cast<double>(bytes_) / (now_seconds() - t0));
    best.cpu =
        std::max(best.cpu, static_cast<double>(bytes_) * n_threads / (process_cpu_seconds() - c0));
  }
  if (sink.load() == 0x5eed) std::puts("");  // keep the reads observable
  return best;
}

}  // namespace kvpack
#endif  // HWY_ONCE
