// Decode against the double reference: every K/V format pair, head dims, GQA ratios, lengths
// from one token to several pages plus a partial tail, three kinds of data, SIMD kernels and the
// codec kernels, one and several threads (so KV splits are merged).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/error.h"

#include "kvpack/attention.h"
#include "paged_kv.h"
#include "same_rounding.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

struct DecodeCase {
  FormatId k;
  FormatId v;
  KvShape shape;
  int group;
  Data data;
};

std::string describe(const DecodeCase& c) {
  return fmt::format("k={} v={} dk={} dv={} group={} tokens={} tail={} data={}",
                     format::info(c.k).name, format::info(c.v).name, c.shape.head_dim_k,
                     c.shape.head_dim_v, c.group, c.shape.n_tokens, c.shape.tail_tokens,
                     testing::data_name(c.data));
}

// Runs decode and checks it: the SIMD kernels against the same-rounding reference (their int8
// query, tables and integer weights applied, so only f32 rounding is left), the codec kernels
// against the double reference, each within its derived tolerance. Both tolerances must be
// tight enough that an all-zero output would fail.
void check_decode(const DecodeCase& c, const Params& base, ThreadPool& pool) {
  const PagedKv kv(c.k, c.v, c.shape, c.data, 1000 + c.shape.n_tokens);
  const int n_q = c.group * c.shape.n_kv_heads;
  const std::vector<float> q = kv.queries(1, n_q, 77);
  std::vector<float> want(static_cast<size_t>(n_q) * c.shape.head_dim_v);
  reference(kv.view(), q.data(), 1, n_q, want.data(), base);
  const std::vector<float> zero(want.size(), 0.0f);
  // The specialised kernels with integer value weights (the default), with exact ones, and the
  // codec kernels.
  for (int variant = 0; variant < 3; ++variant) {
    Params p = base;
    p.exact_value_weights = variant == 1;
    p.codec_ops = variant == 2;
    Workspace ws;
    std::vector<float> got(want.size(), -1.0f);
    decode(kv.view(), q.data(), n_q, got.data(), p, pool, ws);
    std::vector<float> expected = want;
    std::vector<double> tol;
    if (variant < 2) {
      const testing::Expectation e = testing::same_rounding(kv.view(), q.data(), 1, n_q, p);
      expected.assign(e.value.begin(), e.value.end());
      tol = e.tol;
    } else {
      tol = testing::tolerance(kv.view(), q.data(), 1, n_q, p, kv.max_key_norm());
    }
    const auto e = testing::excess(got, expected, tol);
    static const char* kNames[] = {" simd", " simd exact weights", " codec ops"};
    ASSERT_LT(e.worst, 1.0) << describe(c) << kNames[variant] << " at " << e.index << ": got "
                            << got[e.index] << " want " << expected[e.index] << " tol "
                            << tol[e.index];
    ASSERT_GT(testing::excess(zero, expected, tol).worst, 1.0)
        << describe(c) << kNames[variant] << ": an all-zero output would pass";
  }
}

std::vector<FormatId> formats_for(format::Role role) {
  std::vector<FormatId> out;
  for (const auto& f : format::all_formats()) {
    if (f.supports(role)) out.push_back(f.id);
  }
  return out;
}

TEST(Decode, EveryFormatPairMatchesReference) {
  ThreadPool pool(2);
  for (FormatId k : formats_for(format::Role::K)) {
    for (FormatId v : formats_for(format::Role::V)) {
      for (int n : {1, 37, 101, 300}) {
        for (Data d : {Data::gaussian, Data::sink}) {
          const KvShape s{2, 128, 128, 32, n, n % 32};
          check_decode({k, v, s, 4, d}, Params{}, pool);
        }
      }
    }
  }
}

TEST(Decode, HeadDimsGroupsAndLengths) {
  ThreadPool pool(2);
  const std::pair<FormatId, FormatId> pairs[] = {
      {FormatId::f16, FormatId::f16},        {FormatId::bf16, FormatId::f32},
      {FormatId::q8, FormatId::q8},          {FormatId::q4, FormatId::q8},
      {FormatId::q4a, FormatId::q4},         {FormatId::turbo4, FormatId::turbo4},
      {FormatId::turbo2, FormatId::turbo3},  {FormatId::turbo3, FormatId::turbo2},
      {FormatId::turbo3_qjl, FormatId::q4a}, {FormatId::turbo4_qjl, FormatId::fp8},
      {FormatId::kivi4, FormatId::turbo4},   {FormatId::kivi2, FormatId::q8},
      {FormatId::fp8, FormatId::turbo3}};
  for (auto [k, v] : pairs) {
    for (int dim : {64, 128, 256}) {
      for (int group : {1, 4, 8}) {
        for (int n : {1, 31, 32, 33, 200}) {
          for (Data d : {Data::gaussian, Data::outliers, Data::sink}) {
            const int tail = n == 32 ? 0 : n % 32;
            check_decode({k, v, KvShape{2, dim, dim, 32, n, tail}, group, d}, Params{}, pool);
          }
        }
      }
    }
  }
}

TEST(Decode, UnusualGeometry) {
  // A page size and head dims the SIMD kernels do not tile (not multiples of 16: the codec
  // kernels serve them), K and V dims that differ, odd groups.
  ThreadPool pool(2);
  check_decode(
      {FormatId::f16, FormatId::f16, KvShape{3, 40, 24, 24, 24 * 3 + 5, 5}, 3, Data::gaussian},
      Params{}, pool);
  check_decode(
      {FormatId::f16, FormatId::bf16, KvShape{2, 96, 64, 16, 16 * 5 + 7, 7}, 5, Data::outliers},
      Params{}, pool);
}

TEST(Decode, ManySplitsMergeExactly) {
  // 4 threads and 2 KV heads give up to 8 splits per head; 3000 tokens give 93 pages, so every
  // split runs and the merge combines them with the tail and the sinks.
  ThreadPool pool(4);
  std::vector<float> sinks = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, 3.0f, -2.0f, 0.25f};
  Params p;
  p.sinks = sinks.data();
  check_decode(
      {FormatId::f16, FormatId::f16, KvShape{2, 128, 128, 32, 3000, 24}, 4, Data::gaussian}, p,
      pool);
  check_decode({FormatId::f32, FormatId::f16, KvShape{2, 64, 64, 32, 3008, 0}, 4, Data::sink}, p,
               pool);
}

TEST(Decode, Options) {
  ThreadPool pool(2);
  std::vector<float> sinks(8, 1.5f);
  for (int window : {0, 1, 20, 64, 100}) {
    for (float softcap : {0.0f, 5.0f}) {
      for (bool with_sinks : {false, true}) {
        Params p;
        p.window = window;
        p.softcap = softcap;
        p.scale = 0.1f;
        p.sinks = with_sinks ? sinks.data() : nullptr;
        check_decode({FormatId::f16, FormatId::f16, KvShape{2, 64, 64, 32, 140, 12}, 4, Data::sink},
                     p, pool);
      }
    }
  }
}

TEST(Decode, BatchMatchesReferencePerSequence) {
  ThreadPool pool(2);
  const KvShape shapes[] = {
      {2, 64, 64, 32, 90, 26}, {2, 64, 64, 32, 1, 1}, {2, 64, 64, 32, 700, 28}};
  std::vector<PagedKv> seqs;
  for (int i = 0; i < 3; ++i) {
    seqs.emplace_back(FormatId::f16, FormatId::bf16, shapes[i], Data::outliers, 1 + i);
  }
  // A batch shares the layer's codecs: the sequences' codecs have the same formats, geometry
  // and seeds, so sequence 0's read every sequence's bytes.
  std::vector<cache::LayerView> views;
  for (const auto& s : seqs) {
    cache::LayerView v = s.view();
    v.k_codec = seqs[0].view().k_codec;
    v.v_codec = seqs[0].view().v_codec;
    views.push_back(v);
  }
  const int n_q = 8;
  const size_t per_seq = static_cast<size_t>(n_q) * 64;
  std::vector<float> q;
  for (int i = 0; i < 3; ++i) {
    const auto qi = seqs[i].queries(1, n_q, 10 + i);
    q.insert(q.end(), qi.begin(), qi.end());
  }
  Workspace ws;
  std::vector<float> batch(3 * per_seq);
  decode_batch(views, q.data(), n_q, batch.data(), Params{}, pool, ws);
  for (int i = 0; i < 3; ++i) {
    std::vector<float> want(per_seq);
    reference(views[i], q.data() + i * per_seq, 1, n_q, want.data(), Params{});
    const auto tol = testing::tolerance(views[i], q.data() + i * per_seq, 1, n_q, Params{},
                                        seqs[i].max_key_norm());
    const std::vector<float> got(batch.begin() + i * per_seq, batch.begin() + (i + 1) * per_seq);
    EXPECT_LT(testing::excess(got, want, tol).worst, 1.0) << "sequence " << i;
  }
}

// Which kernel serves each format (and that none falls back to the codec operations) is pinned
// in kernel_info_test.cpp.

TEST(Decode, RejectsBadShapes) {
  ThreadPool pool(1);
  const PagedKv kv(FormatId::f16, FormatId::f16, KvShape{2, 64, 64, 32, 40, 8}, Data::gaussian, 1);
  std::vector<float> q(3 * 64), out(3 * 64);
  Workspace ws;
  EXPECT_THROW(decode(kv.view(), q.data(), 3, out.data(), Params{}, pool, ws), Error);
  Params p;
  p.window = -1;
  EXPECT_THROW(decode(kv.view(), q.data(), 2, out.data(), p, pool, ws), Error);
  cache::LayerView empty = kv.view();
  empty.page_ids = {};
  empty.tail_tokens = 0;
  EXPECT_THROW(decode(empty, q.data(), 2, out.data(), Params{}, pool, ws), Error);
}

}  // namespace
}  // namespace kvpack::attention
