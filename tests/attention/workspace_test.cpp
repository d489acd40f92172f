// Attention scratch is bounded by threads x page-sized buffers: it must not grow with context.
#include <gtest/gtest.h>

#include "kvpack/attention.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

TEST(Workspace, DecodeScratchDoesNotGrowWithContext) {
  ThreadPool pool(2);
  size_t predicted = 0;
  size_t used = 0;
  for (int n : {1, 100, 4000, 16000}) {
    const PagedKv kv(FormatId::f16, FormatId::f16, KvShape{2, 128, 128, 32, n, n % 32},
                     Data::gaussian, 1);
    const size_t p = decode_workspace_bytes(kv.view(), 8, pool.size());
    if (predicted == 0) predicted = p;
    EXPECT_EQ(p, predicted) << n << " tokens";
    Workspace ws;
    std::vector<float> q = kv.queries(1, 8, 2), out(8 * 128);
    decode(kv.view(), q.data(), 8, out.data(), Params{}, pool, ws);
    if (used == 0) used = ws.bytes();
    EXPECT_EQ(ws.bytes(), used) << n << " tokens";
    EXPECT_LE(ws.bytes(), predicted);
  }
  // And it is small: well under one page's f16 K+V per thread times a few.
  EXPECT_LT(used, size_t{256} << 10);
}

TEST(Workspace, PrefillScratchDoesNotGrowWithContext) {
  ThreadPool pool(2);
  size_t used = 0;
  for (int n : {40, 1000, 8008}) {
    const PagedKv kv(FormatId::f16, FormatId::f16, KvShape{2, 64, 64, 32, n, 8}, Data::gaussian, 1);
    Workspace ws;
    std::vector<float> q = kv.queries(40, 8, 2), out(40 * 8 * 64);
    prefill(kv.view(), q.data(), 40, 8, out.data(), Params{}, pool, ws);
    if (used == 0) used = ws.bytes();
    EXPECT_EQ(ws.bytes(), used) << n << " tokens";
  }
}

}  // namespace
}  // namespace kvpack::attention
