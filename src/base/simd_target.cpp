#include "base/simd_target.h"
// First: the targets HWY_TARGETS names here must be those the kernels are compiled for.
#include "base/hwy_config.h"

#include <fmt/format.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "base/error.h"

namespace kvpack {
namespace {

struct NamedTarget {
  std::string_view name;
  int64_t bit;
};

// Best first. EMU128 is Highway's portable fallback when the baseline has no SIMD target.
constexpr NamedTarget kTargets[] = {
    {"avx512-vnni", HWY_AVX3_DL}, {"avx512", HWY_AVX3}, {"avx2", HWY_AVX2},
    {"avx2-novnni", HWY_AVX2},    {"sse4", HWY_SSE4},   {"neon", HWY_NEON},
    {"scalar", HWY_EMU128},
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string known_names() {
  std::vector<std::string> names{"best"};
  for (const NamedTarget& t : kTargets) names.emplace_back(t.name);
  return joined(names);
}

}  // namespace

int64_t simd_target_bit(std::string_view name) {
  const std::string n = lower(name);
  if (n == "best") return 0;
  for (const NamedTarget& t : kTargets) {
    if (t.name == n) return t.bit;
  }
  fail("unknown SIMD target '{}' (known: {})", name, known_names());
}

std::string simd_target_name(int64_t bit) {
  for (const NamedTarget& t : kTargets) {
    if (t.bit == bit) return std::string(t.name);
  }
  if (bit == HWY_SCALAR) return "scalar";
  return fmt::format("hwy target {}", bit);
}

namespace {

// The target force_simd_target() set (0: none). Highway has no getter for its test mask.
int64_t g_forced = 0;
// "avx2-novnni" was forced: AVX2 kernels leave AVX-VNNI alone.
bool g_no_avx_vnni = false;

bool cpu_has_avx_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  // CPUID leaf 7, sub-leaf 1: EAX bit 4 is AVX-VNNI (the VEX-encoded VPDPBUSD on ymm).
  unsigned a = 0, b = 0, c = 0, d = 0;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  return (a >> 4) & 1;
#else
  return false;
#endif
}

// Targets this CPU runs and this build compiled, best first, whatever is forced now.
std::vector<int64_t> unrestricted_targets() {
  hwy::SetSupportedTargetsForTest(0);
  std::vector<int64_t> out = hwy::SupportedAndGeneratedTargets();
  hwy::SetSupportedTargetsForTest(g_forced);
  return out;
}

}  // namespace

std::vector<std::string> available_simd_targets() {
  std::vector<std::string> out;
  for (const int64_t bit : unrestricted_targets()) {
    if (bit == HWY_AVX2 && !cpu_has_avx_vnni()) {
      out.push_back("avx2-novnni");  // what "avx2" is on this CPU; both names are accepted
      continue;
    }
    out.push_back(simd_target_name(bit));
    if (bit == HWY_AVX2) out.push_back("avx2-novnni");
  }
  return out;
}

void force_simd_target(std::string_view name) {
  int64_t bit = simd_target_bit(name);
  const std::vector<int64_t> have = unrestricted_targets();
  // "scalar" is whichever portable fallback Highway built (EMU128, or SCALAR without SIMD).
  if (bit == HWY_EMU128 && std::find(have.begin(), have.end(), bit) == have.end()) {
    bit = HWY_SCALAR;
  }
  if (bit != 0 && std::find(have.begin(), have.end(), bit) == have.end()) {
    fail("SIMD target '{}' is not available on this CPU (available: {})", name,
         joined(available_simd_targets()));
  }
  g_forced = bit;
  g_no_avx_vnni = lower(name) == "avx2-novnni";
  hwy::SetSupportedTargetsForTest(bit);
}

void apply_simd_env() {
  const char* v = std::getenv(kSimdEnv);
  if (v == nullptr || *v == '\0') return;
  try {
    force_simd_target(v);
  } catch (const Error& e) {
    fail("{}: {}", kSimdEnv, e.what());
  }
}

bool avx_vnni_allowed() {
  static const bool has = cpu_has_avx_vnni();
  return has && !g_no_avx_vnni;
}

std::string active_simd_target() {
  // The best target left after any restriction: what HWY_DYNAMIC_DISPATCH picks.
  const std::vector<int64_t> have = hwy::SupportedAndGeneratedTargets();
  if (have.empty()) return "scalar";
  if (have.front() == HWY_AVX2 && !avx_vnni_allowed()) return "avx2-novnni";
  return simd_target_name(have.front());
}

}  // namespace kvpack
