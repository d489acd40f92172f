// Which SIMD target the kernels dispatch to, and a switch that forces one, so a single machine
// can test and measure every code path it can run (an AVX-512 machine runs its AVX2 kernels).
//
// Every SIMD kernel in kvpack dispatches through Highway; forcing a target restricts Highway's
// dynamic dispatch for the whole process. Names (case-insensitive):
//   best         the best target this CPU runs (the default)
//   avx512-vnni  Highway AVX3_DL: AVX-512 with VNNI, VBMI, VPOPCNTDQ...
//   avx512       Highway AVX3: AVX-512 F/BW/DQ/VL
//   avx2         Highway AVX2: AVX2 + FMA + F16C, and AVX-VNNI (VEX VPDPBUSD) where the CPU has
//                it and a kernel uses it (avx_vnni_allowed())
//   avx2-novnni  the same AVX2 kernels without AVX-VNNI, as on Zen 2/3 and pre-Alder Lake Intel
//   sse4         Highway SSE4
//   neon         Highway NEON (Arm)
//   scalar       Highway EMU128: the portable fallback
// The environment variable KVPACK_SIMD sets it for any program (the CLI's --simd flag too).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvpack {

// The environment variable read by apply_simd_env().
inline constexpr const char* kSimdEnv = "KVPACK_SIMD";

// Restricts dispatch to the named target. Throws Error for an unknown name ("unknown SIMD target
// 'x' (known: ...)") or a target this CPU cannot run or this build did not compile ("SIMD target
// 'avx512' is not available on this CPU (available: avx2, sse4, scalar)"). "best" undoes it.
void force_simd_target(std::string_view name);

// Applies KVPACK_SIMD when set and not empty (same errors as force_simd_target, naming the
// variable). Programs call it once at start.
void apply_simd_env();

// kvpack's name of the target dispatch chooses now ("avx512-vnni", "avx2", ...).
std::string active_simd_target();

// kvpack's names of the targets this CPU runs and this build compiled, best first (whatever is
// forced now).
std::vector<std::string> available_simd_targets();

// Whether AVX2-target kernels may use AVX-VNNI: the CPU has it and "avx2-novnni" is not forced.
// AVX-512 targets use their own VNNI (AVX3_DL) regardless.
bool avx_vnni_allowed();

// The Highway target bit for one of the names above (0 for "best"); throws Error when unknown.
int64_t simd_target_bit(std::string_view name);
// kvpack's name for a Highway target bit ("hwy target N" for one it has no name for).
std::string simd_target_name(int64_t bit);

}  // namespace kvpack
