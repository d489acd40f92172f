#include <gtest/gtest.h>

#include "base/error.h"
#include "error_of.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

std::string error_of(const std::string& spec) {
  return kvpack::testing::error_of([&] { KVPolicy::parse(spec); });
}

TEST(Policy, ParsesBaseAndDefaults) {
  const KVPolicy p = KVPolicy::parse("k=f32,v=bf16");
  EXPECT_EQ(p.base().k, FormatId::f32);
  EXPECT_EQ(p.base().v, FormatId::bf16);
  EXPECT_TRUE(p.uniform());
  const KVPolicy only_k = KVPolicy::parse("k=bf16");
  EXPECT_EQ(only_k.base().v, FormatId::f16);
}

TEST(Policy, OverridesResolveNegativeIndicesAndRanges) {
  const KVPolicy p = KVPolicy::parse("k=bf16,v=bf16;0,1,-2,-1:k=f32;3..4:v=f32");
  const int n = 10;
  EXPECT_EQ(p.layer(0, n), (LayerFormats{FormatId::f32, FormatId::bf16}));
  EXPECT_EQ(p.layer(1, n), (LayerFormats{FormatId::f32, FormatId::bf16}));
  EXPECT_EQ(p.layer(2, n), (LayerFormats{FormatId::bf16, FormatId::bf16}));
  EXPECT_EQ(p.layer(3, n), (LayerFormats{FormatId::bf16, FormatId::f32}));
  EXPECT_EQ(p.layer(4, n), (LayerFormats{FormatId::bf16, FormatId::f32}));
  EXPECT_EQ(p.layer(8, n), (LayerFormats{FormatId::f32, FormatId::bf16}));
  EXPECT_EQ(p.layer(9, n), (LayerFormats{FormatId::f32, FormatId::bf16}));
}

TEST(Policy, LaterOverridesWin) {
  const KVPolicy p = KVPolicy::parse("k=f16,v=f16;0:k=f32;0:k=bf16");
  EXPECT_EQ(p.layer(0, 4).k, FormatId::bf16);
}

TEST(Policy, ToStringParsesBack) {
  for (const char* spec :
       {"k=f16,v=f16", "k=bf16,v=f32;0,1,-2,-1:k=f32", "k=f32;2:v=bf16;-1:k=f16,v=f32"}) {
    const KVPolicy p = KVPolicy::parse(spec);
    EXPECT_EQ(KVPolicy::parse(p.to_string()), p) << spec << " -> " << p.to_string();
  }
}

TEST(Policy, LlamaFlags) {
  const KVPolicy p = KVPolicy::from_llama_flags("bf16", "");
  EXPECT_EQ(p.base().k, FormatId::bf16);
  EXPECT_EQ(p.base().v, FormatId::f16);
  EXPECT_EQ(KVPolicy::from_llama_flags("", ""), KVPolicy());
}

TEST(Policy, ErrorsNameTheOffendingToken) {
  EXPECT_NE(error_of("k=q9,v=f16").find("'q9'"), std::string::npos) << error_of("k=q9,v=f16");
  EXPECT_NE(error_of("k=f16,x=f16").find("'x=f16'"), std::string::npos);
  EXPECT_NE(error_of("k=f16;a:k=f32").find("'a'"), std::string::npos);
  EXPECT_NE(error_of("k=f16;0").find("'0'"), std::string::npos);
  EXPECT_NE(error_of("kf16").find("'kf16'"), std::string::npos);
  EXPECT_NE(error_of("k=f16;3..1:k=f32").find("'3..1'"), std::string::npos);
  EXPECT_FALSE(error_of("").empty());
}

TEST(Policy, ValidateRejectsMissingLayers) {
  const KVPolicy p = KVPolicy::parse("k=f16,v=f16;12:k=f32");
  EXPECT_THROW(p.validate(8, 64, 64, 32), Error);
  EXPECT_NO_THROW(p.validate(16, 64, 64, 32));
  EXPECT_THROW(KVPolicy::parse("k=f16;-9:k=f32").validate(8, 64, 64, 32), Error);
}

// Ranges are checked before they are expanded: 0..10000000 built ten million entries (and a
// 79 MB error line) before validate() refused them.
TEST(Policy, LayerIndicesAreBoundedBeforeExpansion) {
  const std::string far = error_of("k=q8;0..10000000:k=f16");
  EXPECT_NE(far.find("layer 10000000 is beyond the 4096 layers a policy can name"),
            std::string::npos)
      << far;
  EXPECT_LT(far.size(), 200u);
  EXPECT_NE(error_of("k=q8;-4097:k=f16").find("beyond"), std::string::npos);
  EXPECT_NE(error_of("k=q8;-2147483648..-1:k=f16").find("beyond"), std::string::npos);
  EXPECT_NE(error_of("k=q8;99999999999:k=f16").find("expected a layer index"), std::string::npos);
  std::string many = "k=q8";
  for (int i = 0; i < 4; ++i) many += ";0..4095:k=f16";
  EXPECT_EQ(error_of(many), "");  // 16384 indices: the limit
  EXPECT_NE(error_of(many + ";0:k=f16").find("more than 16384 layer indices"), std::string::npos);
  EXPECT_EQ(KVPolicy::parse("k=q8;-4096..-1:k=f16").overrides()[0].layers.size(), 4096u);
  EXPECT_EQ(KVPolicy::parse("k=q8;0..4095:k=f16").overrides()[0].layers.size(), 4096u);
}

}  // namespace
}  // namespace kvpack::format
