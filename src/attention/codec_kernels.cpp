// The codec kernels: every format's own K-role and V-role operations (format.h), called page by
// page. They make every K/V pair work whatever its kernels; the specialised kernels in cpu/ are
// faster readings of the same pages and are tested against the same reference.
#include "attention/kernels.h"

namespace kvpack::attention::detail {
namespace {

size_t codec_query_bytes(const format::Codec& codec) {
  return codec.query_floats() * sizeof(float);
}

void codec_prepare(const format::Codec& codec, int head, const float* q, int rows, size_t q_stride,
                   uint8_t* qbuf) {
  float* qp = reinterpret_cast<float*>(qbuf);
  for (int r = 0; r < rows; ++r) {
    codec.prepare_query(head, q + r * q_stride, qp + r * codec.query_floats());
  }
}

void codec_score(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows,
                 float* logits, size_t stride, Prefetcher& pf) {
  const int pt = codec.page_tokens();
  const float* qp = reinterpret_cast<const float*>(qbuf);
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      codec.score(b.at(i, h), pt, qp + h * rows * codec.query_floats(), rows,
                  logits + h * rows * stride + i * pt, static_cast<int>(stride));
      pf.advance(codec.head_bytes());
    }
  }
}

void codec_accumulate(const format::Codec& codec, const BlockSet& b, const float* w,
                      size_t w_stride, int rows, float* acc, Prefetcher& pf) {
  const int pt = codec.page_tokens();
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      codec.accumulate(b.at(i, h), pt, w + h * rows * w_stride + i * pt, static_cast<int>(w_stride),
                       rows, acc + h * rows * codec.acc_floats());
      pf.advance(codec.head_bytes());
    }
  }
}

const KKernel kCodecK{"codec ops", 0, 0, codec_query_bytes, codec_prepare, codec_score};
const VKernel kCodecV{"codec ops", codec_accumulate};

}  // namespace

const KKernel& codec_k_kernel() {
  return kCodecK;
}
const VKernel& codec_v_kernel() {
  return kCodecV;
}

}  // namespace kvpack::attention::detail
