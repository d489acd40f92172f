// The double reference against facts that do not depend on it: an f32 cache (stored exactly)
// gives plain softmax attention computed here from the original numbers; options change the
// result the way their definitions say.
#include <gtest/gtest.h>

#include <cmath>

#include "kvpack/attention.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

// Decoded f32 rows of one head are the originals; read them back through the codec.
std::vector<float> head_rows(const cache::LayerView& v, int head, bool keys) {
  const format::Codec& c = keys ? *v.k_codec : *v.v_codec;
  std::vector<float> out(static_cast<size_t>(v.n_tokens()) * c.head_dim());
  for (size_t p = 0; p < v.page_ids.size(); ++p) {
    c.decode(head, keys ? v.k_block(p, head) : v.v_block(p, head), v.page_tokens,
             out.data() + p * v.page_tokens * c.head_dim());
  }
  for (int t = 0; t < v.tail_tokens; ++t) {
    const float* r = keys ? v.k_tail_row(head, t) : v.v_tail_row(head, t);
    std::copy(r, r + c.head_dim(), out.data() + (v.encoded_tokens() + t) * c.head_dim());
  }
  return out;
}

TEST(Reference, PlainSoftmaxOverExactCache) {
  const PagedKv kv(FormatId::f32, FormatId::f32, KvShape{1, 8, 4, 16, 37, 5}, Data::gaussian, 3);
  const auto q = kv.queries(1, 2, 5);
  std::vector<float> out(2 * 4);
  reference(kv.view(), q.data(), 1, 2, out.data(), Params{});
  const auto k = head_rows(kv.view(), 0, true);
  const auto v = head_rows(kv.view(), 0, false);
  for (int i = 0; i < 2; ++i) {
    std::vector<double> w(37);
    double sum = 0;
    for (int s = 0; s < 37; ++s) {
      double dot = 0;
      for (int j = 0; j < 8; ++j) dot += double(q[i * 8 + j]) * k[s * 8 + j];
      w[s] = std::exp(dot / std::sqrt(8.0));
      sum += w[s];
    }
    for (int j = 0; j < 4; ++j) {
      double o = 0;
      for (int s = 0; s < 37; ++s) o += w[s] / sum * v[s * 4 + j];
      EXPECT_NEAR(out[i * 4 + j], o, 1e-6 * (1 + std::fabs(o)));
    }
  }
}

TEST(Reference, SinkScalesOutputByItsShareOfTheDenominator) {
  const PagedKv kv(FormatId::f32, FormatId::f32, KvShape{1, 8, 8, 16, 20, 4}, Data::gaussian, 4);
  const auto q = kv.queries(1, 1, 6);
  std::vector<float> plain(8), sunk(8);
  reference(kv.view(), q.data(), 1, 1, plain.data(), Params{});
  // A sink of logit -inf-like (very negative) changes nothing; a sink equal to log(Z) halves
  // the output, where Z is the plain softmax denominator relative to the max logit... test the
  // ratio instead: out_sink / out_plain is the same for every channel and in (0, 1).
  const float sink = 2.0f;
  Params p;
  p.sinks = &sink;
  reference(kv.view(), q.data(), 1, 1, sunk.data(), p);
  const double ratio = sunk[0] / plain[0];
  EXPECT_GT(ratio, 0.0);
  EXPECT_LT(ratio, 1.0);
  for (int j = 1; j < 8; ++j) EXPECT_NEAR(sunk[j] / plain[j], ratio, 1e-5);
}

TEST(Reference, WindowEqualsTruncatedContext) {
  // With a window of w tokens, attending over the whole cache equals attending over a cache of
  // only the last w tokens: build that cache (all tail) from the same numbers.
  const PagedKv kv(FormatId::f32, FormatId::f32, KvShape{1, 8, 8, 16, 48, 0}, Data::gaussian, 9);
  const auto q = kv.queries(1, 1, 2);
  Params p;
  p.window = 10;
  std::vector<float> windowed(8);
  reference(kv.view(), q.data(), 1, 1, windowed.data(), p);
  const auto k = head_rows(kv.view(), 0, true);
  const auto v = head_rows(kv.view(), 0, false);
  cache::LayerView tail = kv.view();
  tail.page_ids = {};
  tail.k_tail = k.data() + 38 * 8;
  tail.v_tail = v.data() + 38 * 8;
  tail.tail_tokens = 10;
  tail.tail_head_stride = 10;
  std::vector<float> truncated(8);
  reference(tail, q.data(), 1, 1, truncated.data(), Params{});
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(windowed[j], truncated[j], 1e-6);
}

TEST(Reference, SoftcapBoundsLogits) {
  // With a tiny cap every logit is within +-cap, so the weights are nearly uniform and the
  // output nears the mean of the values.
  const PagedKv kv(FormatId::f32, FormatId::f32, KvShape{1, 8, 8, 16, 32, 0}, Data::sink, 1);
  const auto q = kv.queries(1, 1, 3);
  Params p;
  p.softcap = 1e-3f;
  std::vector<float> out(8);
  reference(kv.view(), q.data(), 1, 1, out.data(), p);
  const auto v = head_rows(kv.view(), 0, false);
  for (int j = 0; j < 8; ++j) {
    double mean = 0, spread = 0;
    for (int s = 0; s < 32; ++s) mean += v[s * 8 + j] / 32.0;
    for (int s = 0; s < 32; ++s) spread += std::fabs(v[s * 8 + j]) / 32.0;
    EXPECT_NEAR(out[j], mean, 4e-3 * spread);
  }
}

}  // namespace
}  // namespace kvpack::attention
