// The forced-target switch every benchmark and test uses to reach the kernels of weaker targets.
#include "base/simd_target.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "base/error.h"
#include "error_of.h"

namespace kvpack {
namespace {

using testing::error_of;

// Restores normal dispatch however a test ends.
struct Restore {
  ~Restore() { force_simd_target("best"); }
};

TEST(SimdTarget, EveryAvailableTargetCanBeForcedAndUndone) {
  Restore restore;
  const std::vector<std::string> have = available_simd_targets();
  ASSERT_FALSE(have.empty());
  const std::string best = active_simd_target();
  EXPECT_EQ(best, have.front());
  for (const std::string& t : have) {
    force_simd_target(t);
    EXPECT_EQ(active_simd_target(), t);
    EXPECT_EQ(available_simd_targets(), have);
  }
  force_simd_target("BEST");
  EXPECT_EQ(active_simd_target(), best);
  EXPECT_EQ(available_simd_targets(), have);
}

TEST(SimdTarget, UnknownAndUnavailableNamesAreErrors) {
  Restore restore;
  EXPECT_EQ(
      error_of([] { force_simd_target("avx3"); }),
      "unknown SIMD target 'avx3' (known: best, avx512-vnni, avx512, avx2, avx2-novnni, sse4, "
      "neon, scalar)");
  // A target of the other architecture family is never available.
#if defined(__x86_64__)
  const char* foreign = "neon";
#else
  const char* foreign = "avx2";
#endif
  const std::string msg = error_of([&] { force_simd_target(foreign); });
  EXPECT_NE(msg.find("is not available on this CPU (available: "), std::string::npos) << msg;
  EXPECT_EQ(active_simd_target(), available_simd_targets().front());
}

TEST(SimdTarget, EnvironmentVariableIsAppliedAndNamedInErrors) {
  Restore restore;
  const std::string last = available_simd_targets().back();
  ::setenv(kSimdEnv, last.c_str(), 1);
  apply_simd_env();
  EXPECT_EQ(active_simd_target(), last);
  ::setenv(kSimdEnv, "nonsense", 1);
  EXPECT_EQ(error_of([] { apply_simd_env(); }).rfind("KVPACK_SIMD: unknown SIMD target", 0), 0u);
  ::unsetenv(kSimdEnv);
}

}  // namespace
}  // namespace kvpack
