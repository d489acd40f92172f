// Per Highway target: KVPACK_VNNI, the attribute that every function on the path from an
// exported kernel down to a VPDPBUSD carries on AVX3_DL (Highway 1.0.3's AVX3_DL target string
// lacks avx512vnni, and GCC inlines only into supersets); empty on every other target.
// Deliberately without an include guard: kernel files include it after <hwy/highway.h>, and
// hwy/foreach_target.h re-includes them once per target.
#undef KVPACK_VNNI
#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include "attention/cpu/vnni.h"
#define KVPACK_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define KVPACK_VNNI
#endif
