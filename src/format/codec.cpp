// The Codec base class: geometry bookkeeping and generic role operations written over decode().
// Formats override the role operations to read their codes directly; these generic versions
// remain the readable definition of what each operation computes.
#include <vector>

#include "base/aligned.h"
#include "base/error.h"
#include "kvpack/format.h"

namespace kvpack::format {

double FormatInfo::bits_per_value(int head_dim, int page_tokens) const {
  return 8.0 * static_cast<double>(payload_bytes(head_dim, page_tokens)) /
         (static_cast<double>(head_dim) * page_tokens);
}

size_t FormatInfo::head_bytes(int head_dim, int page_tokens) const {
  return round_up(payload_bytes(head_dim, page_tokens), kCacheLine);
}

Codec::Codec(const FormatInfo& info, const CodecConfig& config)
    : info_(info),
      config_(config),
      head_bytes_(info.head_bytes(config.head_dim, config.page_tokens)) {}

void Codec::prepare_query(int /*head*/, const float* q, float* qp) const {
  for (int j = 0; j < head_dim(); ++j) qp[j] = q[j];
}

void Codec::score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
                  int logits_stride) const {
  const int d = head_dim();
  std::vector<float> k(static_cast<size_t>(n) * d);  // [n][d], one page at most
  decode(0, block, n, k.data());
  for (int i = 0; i < n_q; ++i) {
    for (int t = 0; t < n; ++t) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += static_cast<double>(qp[i * d + j]) * k[t * d + j];
      logits[i * logits_stride + t] = static_cast<float>(s);
    }
  }
}

void Codec::accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                       float* acc) const {
  const int d = head_dim();
  std::vector<float> v(static_cast<size_t>(n) * d);  // [n][d], one page at most
  decode(0, block, n, v.data());
  for (int i = 0; i < n_q; ++i) {
    for (int t = 0; t < n; ++t) {
      const float wt = w[i * w_stride + t];
      for (int j = 0; j < d; ++j) acc[i * d + j] += wt * v[t * d + j];
    }
  }
}

void Codec::finish(int /*head*/, const float* acc, int n_q, float* out) const {
  const size_t count = static_cast<size_t>(n_q) * head_dim();
  for (size_t i = 0; i < count; ++i) out[i] = acc[i];
}

}  // namespace kvpack::format
