#include "attention/turbo_table.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "format/codebook.h"

namespace kvpack::attention::detail {
namespace {

TurboTable build(int d) {
  const format::Codebook& cb = format::codebook(d, 4);
  const double cmax = std::fabs(cb.centroids.back());
  TurboTable best;
  best.rel_error = 1e30;
  for (int top = 96; top <= 127; ++top) {
    TurboTable t;
    t.scale = static_cast<float>(cmax / top);
    for (int i = 0; i < 16; ++i) {
      const double c = cb.centroids[i];
      const long k = std::lround(c / t.scale);
      t.codes[i] = static_cast<int8_t>(k);
      t.biased[i] = static_cast<uint8_t>(k + 128);
      t.centroids[i] = cb.centroids[i];
      t.rel_error =
          std::fmax(t.rel_error, std::fabs(k * static_cast<double>(t.scale) - c) / std::fabs(c));
    }
    if (t.rel_error < best.rel_error) best = t;
  }
  return best;
}

}  // namespace

const TurboTable& turbo4_table(int d) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<TurboTable>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[d];
  if (!slot) slot = std::make_unique<TurboTable>(build(d));
  return *slot;
}

}  // namespace kvpack::attention::detail
