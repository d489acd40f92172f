#include "model/moe.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "model/ops.h"

namespace kvpack::model {

void route_experts(const float* logits, int n, int k, int32_t* ids, float* weights) {
  std::vector<float> p(logits, logits + n);
  softmax(p.data(), n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // Best first, the lower id on a tie (stable on the ascending ids).
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  float sum = 0;
  for (int j = 0; j < k; ++j) {
    ids[j] = order[static_cast<size_t>(j)];
    weights[j] = p[static_cast<size_t>(ids[j])];
    sum += weights[j];
  }
  for (int j = 0; j < k; ++j) weights[j] /= sum;
}

}  // namespace kvpack::model
