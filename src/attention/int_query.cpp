#include <algorithm>
#include <cmath>

#include "attention/int_query.h"

namespace kvpack::attention::detail {

void quantize_query(const IntQueryLayout& l, const float* q, uint8_t* row) {
  auto* codes = reinterpret_cast<int8_t*>(row + l.codes());
  auto* fcodes = reinterpret_cast<float*>(row + l.floats());
  auto* scale = reinterpret_cast<float*>(row + l.scales());
  auto* sum = reinterpret_cast<int32_t*>(row + l.sums());
  for (int g = 0; g < l.groups(); ++g) {
    float amax = 0;
    for (int j = g * l.group; j < (g + 1) * l.group; ++j) amax = std::max(amax, std::fabs(q[j]));
    const float s = amax / 127.0f;
    scale[g] = s;
    sum[g] = 0;
    for (int j = g * l.group; j < (g + 1) * l.group; ++j) {
      const float k = s > 0 ? std::clamp(std::nearbyint(q[j] / s), -127.0f, 127.0f) : 0.0f;
      codes[j] = static_cast<int8_t>(k);
      fcodes[j] = k;
      sum[g] += static_cast<int32_t>(k);
    }
  }
}

}  // namespace kvpack::attention::detail
