#include "attention/turbo_table.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "format/codebook.h"

namespace kvpack::attention::detail {
namespace {

TurboTable build(int d, int bits) {
  const format::Codebook& cb = format::codebook(d, bits);
  const int n = 1 << bits;
  const double cmax = std::fabs(cb.centroids.back());
  TurboTable best;
  best.rel_error = 1e30;
  for (int top = 96; top <= 127; ++top) {
    TurboTable t;
    t.scale = static_cast<float>(cmax / top);
    for (int i = 0; i < 16; ++i) {
      const double c = cb.centroids[i % n];
      const long k = std::lround(c / t.scale);
      t.codes[i] = static_cast<int8_t>(k);
      t.biased[i] = static_cast<uint8_t>(k + 128);
      t.centroids[i] = cb.centroids[i % n];
      t.rel_error =
          std::fmax(t.rel_error, std::fabs(k * static_cast<double>(t.scale) - c) / std::fabs(c));
    }
    if (t.rel_error < best.rel_error) best = t;
  }
  return best;
}

}  // namespace

const TurboTable& turbo_table(int d, int bits) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::unique_ptr<TurboTable>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[{d, bits}];
  if (!slot) slot = std::make_unique<TurboTable>(build(d, bits));
  return *slot;
}

}  // namespace kvpack::attention::detail
