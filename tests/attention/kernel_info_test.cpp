// kernel_info() against the tests' own statement (kernel_expect.h) for every format, role and
// a spread of geometries, on every SIMD target: which kernel serves the codec, and every figure
// the tolerances of the other tests are derived from (query rounding, integer weights, table
// errors). A kernel that silently falls back to the codec operations, or starts rounding more
// coarsely, fails here; the promise that every format has a specialised kernel at the common
// head dims is pinned below.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "every_target.h"
#include "kernel_expect.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using format::Role;

std::vector<std::unique_ptr<format::Codec>> every_codec() {
  std::vector<std::unique_ptr<format::Codec>> out;
  for (const format::FormatInfo& f : format::all_formats()) {
    for (Role role : {Role::K, Role::V}) {
      for (int d : {8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 256}) {
        for (int T : {8, 16, 24, 32, 64, 256}) {
          const format::CodecConfig config{role, d, T, 2, 3};
          if (!format::why_unsupported(f.id, config).empty()) continue;
          out.push_back(format::make_codec(f.id, config));
        }
      }
    }
  }
  return out;
}

void expect_same(const KernelInfo& got, const KernelInfo& want, const format::Codec& codec,
                 const Params& p) {
  const std::string what = std::string(format::info(codec.info().id).name) +
                           (codec.config().role == Role::K ? " K" : " V") + " d " +
                           std::to_string(codec.head_dim()) + " T " +
                           std::to_string(codec.page_tokens()) +
                           (p.exact_value_weights ? " exact" : "") + (p.codec_ops ? " codec" : "");
  if (want.name == "codec ops") {
    EXPECT_EQ(got.name, "codec ops") << what;
  } else {
    // "<kernel> (<Highway target>)"
    EXPECT_EQ(got.name.rfind(want.name + " (", 0), 0u) << what << ": " << got.name;
    EXPECT_EQ(got.name.back(), ')') << what << ": " << got.name;
  }
  EXPECT_EQ(got.query_bits, want.query_bits) << what;
  EXPECT_EQ(got.query_group, want.query_group) << what;
  EXPECT_EQ(got.weight_bits, want.weight_bits) << what;
  EXPECT_EQ(got.weight_span_pages, want.weight_span_pages) << what;
  EXPECT_NEAR(got.key_rel_error, want.key_rel_error, 1e-12) << what;
  EXPECT_NEAR(got.value_rel_error, want.value_rel_error, 1e-12) << what;
}

TEST(KernelInfo, EveryFormatRoleAndGeometryIsPinned) {
  const auto codecs = every_codec();
  ASSERT_GT(codecs.size(), 500u);
  testing::on_every_target([&](const std::string&, bool) {
    for (const auto& codec : codecs) {
      for (int variant = 0; variant < 3; ++variant) {
        Params p;
        p.exact_value_weights = variant == 1;
        p.codec_ops = variant == 2;
        expect_same(kernel_info(*codec, p), testing::expected_kernel(*codec, p), *codec, p);
      }
    }
  });
}

TEST(KernelInfo, EveryFormatHasASpecialisedKernelAtCommonGeometries) {
  // The statement the pin above holds the kernels to: no format is read through its codec
  // operations at the head dims and page sizes models use.
  for (const format::FormatInfo& f : format::all_formats()) {
    for (Role role : {Role::K, Role::V}) {
      if (!f.supports(role)) continue;
      for (int d : {64, 128, 256}) {
        for (int T : {16, 32, 64}) {
          const auto codec = format::make_codec(f.id, {role, d, T, 2, 0});
          for (bool exact : {false, true}) {
            Params p;
            p.exact_value_weights = exact;
            EXPECT_NE(testing::expected_kernel(*codec, p).name, "codec ops")
                << f.name << (role == Role::K ? " K" : " V") << " d " << d << " T " << T;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvpack::attention
