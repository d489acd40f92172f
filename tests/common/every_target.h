// Test support: run a check once per SIMD target this machine and build can run (kvpack's
// forced-target switch, src/base/simd_target.h), so the AVX2 kernels (with and without AVX-VNNI),
// the AVX-512 ones and the portable fallback are each compared with their references on one
// machine. Normal dispatch is restored however the check ends.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/simd_target.h"

namespace kvpack::testing {

struct ForcedTarget {
  explicit ForcedTarget(const std::string& name) { force_simd_target(name); }
  ~ForcedTarget() { force_simd_target("best"); }
  ForcedTarget(const ForcedTarget&) = delete;
  ForcedTarget& operator=(const ForcedTarget&) = delete;
};

// fn(name, best): name as available_simd_targets() gives it; best for the first (the target
// dispatch picks by default). Each call runs inside a SCOPED_TRACE naming the target.
template <typename Fn>
void on_every_target(const Fn& fn) {
  const std::vector<std::string> names = available_simd_targets();
  ASSERT_FALSE(names.empty());
  for (size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE("SIMD target " + names[i]);
    ForcedTarget use(names[i]);
    fn(names[i], i == 0);
  }
}

}  // namespace kvpack::testing
