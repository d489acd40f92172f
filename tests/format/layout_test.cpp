// Every codec's BlockLayout (format.h) against docs/formats.md's byte layouts, stated here from
// the document for each format, role and a spread of geometries: the attention kernels read
// these facts instead of format ids, so a wrong offset here would be a wrong kernel there.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "kvpack/format.h"

namespace kvpack::format {
namespace {

using L = BlockLayout;

// docs/formats.md, per format and role, for head dim d and T page tokens (T4: T rounded up to
// a multiple of 4, G = d / group_size(d) groups per token).
BlockLayout documented(FormatId id, Role role, int d, int T) {
  const size_t T4 = (static_cast<size_t>(T) + 3) / 4 * 4, G = d / std::max(1, group_size(d));
  const bool key = role == Role::K;
  L l;
  const auto floats = [&](L::Element e, int bits) {
    l.element = e;
    l.order = key ? L::Order::channel_major : L::Order::token_major;
    l.planes[0] = bits;
    l.payload = static_cast<size_t>(T) * d * bits / 8;
  };
  const auto grid = [&](int bits, bool mins) {
    l.element = L::Element::integer;
    l.order = key ? L::Order::key_planes : L::Order::value_planes;
    l.planes[0] = bits;
    l.code_offset = bits == 4 && !mins ? 8 : 0;
    l.group = group_size(d);
    l.steps = T4 * d * bits / 8;
    l.mins = mins ? l.steps + 2 * T * G : L::kAbsent;
    l.payload = l.steps + 2 * T * G * (mins ? 2 : 1);
  };
  const auto turbo = [&](int mse_bits, bool qjl) {
    l.element = L::Element::centroid;
    l.order = key ? L::Order::key_planes : L::Order::value_planes;
    l.codebook_bits = mse_bits;
    l.norms = 0;
    l.gammas = qjl ? 2 * static_cast<size_t>(T) : L::kAbsent;
    l.codes = (qjl ? 4 : 2) * static_cast<size_t>(T);
    l.sign_in_code = qjl && mse_bits == 3;  // turbo4_qjl: code | sign << 3 in a 4-bit plane
    l.planes[0] = mse_bits == 3 ? (l.sign_in_code ? 4 : 2) : mse_bits;
    l.planes[1] = mse_bits == 3 && !l.sign_in_code ? 1 : 0;
    const size_t codes = T4 * d * mse_bits / 8;
    l.signs = qjl && !l.sign_in_code ? l.codes + codes : L::kAbsent;
    l.payload = l.codes + codes + (qjl ? T4 * d / 8 : 0);
  };
  switch (id) {
    case FormatId::f32:
      floats(L::Element::f32, 32);
      break;
    case FormatId::f16:
      floats(L::Element::f16, 16);
      break;
    case FormatId::bf16:
      floats(L::Element::bf16, 16);
      break;
    case FormatId::fp8:
      floats(L::Element::e4m3, 8);
      l.scales = static_cast<size_t>(T) * d;
      l.payload += 2 * static_cast<size_t>(T);
      break;
    case FormatId::q8:
      grid(8, false);
      break;
    case FormatId::q4:
      grid(4, false);
      break;
    case FormatId::q4a:
      grid(4, true);
      break;
    case FormatId::kivi4:
    case FormatId::kivi2: {
      const int b = id == FormatId::kivi4 ? 4 : 2;
      l.element = L::Element::integer;
      l.order = L::Order::key_planes;
      l.planes[0] = b;
      l.group = 1;
      l.per_channel = true;
      l.steps = static_cast<size_t>(T) * d * b / 8;
      l.mins = l.steps + 2 * static_cast<size_t>(d);
      l.payload = l.mins + 2 * static_cast<size_t>(d);
      break;
    }
    case FormatId::turbo2:
      turbo(2, false);
      break;
    case FormatId::turbo3:
      turbo(3, false);
      break;
    case FormatId::turbo4:
      turbo(4, false);
      break;
    case FormatId::turbo3_qjl:
      turbo(2, true);
      break;
    case FormatId::turbo4_qjl:
      turbo(3, true);
      break;
  }
  return l;
}

TEST(BlockLayout, EveryCodecMatchesDocsFormats) {
  int checked = 0;
  for (const FormatInfo& f : all_formats()) {
    for (Role role : {Role::K, Role::V}) {
      for (int d : {8, 24, 40, 64, 96, 128, 192, 256}) {
        for (int T : {16, 24, 32, 64}) {
          const CodecConfig config{role, d, T, 2, 1};
          if (!why_unsupported(f.id, config).empty()) continue;
          const auto codec = make_codec(f.id, config);
          const BlockLayout& got = codec->layout();
          const BlockLayout want = documented(f.id, role, d, T);
          const std::string what = std::string(f.name) + (role == Role::K ? " K" : " V") + " d " +
                                   std::to_string(d) + " T " + std::to_string(T);
          EXPECT_EQ(got.element, want.element) << what;
          EXPECT_EQ(got.order, want.order) << what;
          EXPECT_EQ(got.planes[0], want.planes[0]) << what;
          EXPECT_EQ(got.planes[1], want.planes[1]) << what;
          EXPECT_EQ(got.code_offset, want.code_offset) << what;
          EXPECT_EQ(got.group, want.group) << what;
          EXPECT_EQ(got.per_channel, want.per_channel) << what;
          EXPECT_EQ(got.codebook_bits, want.codebook_bits) << what;
          EXPECT_EQ(got.sign_in_code, want.sign_in_code) << what;
          EXPECT_EQ(got.codes, want.codes) << what;
          EXPECT_EQ(got.steps, want.steps) << what;
          EXPECT_EQ(got.mins, want.mins) << what;
          EXPECT_EQ(got.scales, want.scales) << what;
          EXPECT_EQ(got.norms, want.norms) << what;
          EXPECT_EQ(got.gammas, want.gammas) << what;
          EXPECT_EQ(got.signs, want.signs) << what;
          EXPECT_EQ(got.payload, want.payload) << what;
          EXPECT_EQ(got.payload, f.payload_bytes(d, T)) << what;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 300);
}

}  // namespace
}  // namespace kvpack::format
