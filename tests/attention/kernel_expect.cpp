#include "kernel_expect.h"

#include <cmath>
#include <string>

#include "base/simd_target.h"
#include "format/codebook.h"

namespace kvpack::testing {
namespace {

using format::FormatId;

bool float_format(FormatId id) {
  return id == FormatId::f32 || id == FormatId::f16 || id == FormatId::bf16 || id == FormatId::fp8;
}
bool int_format(FormatId id) {
  return id == FormatId::q8 || id == FormatId::q4 || id == FormatId::q4a;
}

// Head dims the TurboQuant key kernel reads in whole lines: a 2-bit plane line holds 16
// channels (turbo2, turbo3_qjl's MSE part), a 1-bit plane line 32 (turbo3's bit 2, turbo3_qjl's
// signs); 4-bit planes (turbo4, turbo4_qjl's code | sign) 8.
int turbo_key_multiple(FormatId id) {
  switch (id) {
    case FormatId::turbo2:
      return 16;
    case FormatId::turbo3:
    case FormatId::turbo3_qjl:
      return 32;
    default:
      return 8;
  }
}

attention::KernelInfo named(FormatId id, const char* kind) {
  attention::KernelInfo k;
  k.name = std::string(format::info(id).name) + " " + kind;
  return k;
}

attention::KernelInfo expected_key(const format::Codec& codec) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens();
  attention::KernelInfo k;
  k.name = "codec ops";
  if (T % 16 != 0) return k;
  if (float_format(id) && d % 16 == 0) return named(id, "simd");
  if (int_format(id) && d % 16 == 0) {
    k = named(id, "int8-dot");
    k.query_bits = 8;
    k.query_group = format::group_size(d);  // 32, or 16 where d is not a multiple of 32
    return k;
  }
  const int bits = turbo_mse_bits(id);
  if (bits > 0 && d <= 256 && d % turbo_key_multiple(id) == 0) {
    k = named(id, "int8-dot");
    k.query_bits = 8;  // one scale per row: the rotation spreads the query evenly
    k.key_rel_error = int8_table_error(d, bits);
    return k;
  }
  if ((id == FormatId::kivi4 || id == FormatId::kivi2) && d % 32 == 0 && d <= 256) {
    k = named(id, "int8-dot");
    k.query_bits = 8;
    k.query_group = 32;
  }
  return k;
}

attention::KernelInfo expected_value(const format::Codec& codec, bool exact) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens();
  attention::KernelInfo k;
  k.name = "codec ops";
  if (T % 16 != 0) return k;
  if (float_format(id) && d % 16 == 0 && (id != FormatId::fp8 || T <= 256)) {
    return named(id, "simd");
  }
  const int bits = turbo_mse_bits(id);
  const bool planes = bits == 2 || bits == 3;  // 2-bit planes of whole 64-channel lines
  if ((int_format(id) || bits > 0) && T <= 256 && d % 32 == 0 && d <= 256 &&
      (!planes || d % 64 == 0)) {
    if (exact) return named(id, "f32-weights");
    k = named(id, "int-weights");
    // The AVX2 tiles (also on AVX-512 without VNNI) widen q8's and the tables' int8 elements to
    // int16 and use 15-bit weights; AVX-512 VNNI and the portable path 16 (q8) and 8 bits.
    const std::string target = active_simd_target();
    const bool avx2 = target == "avx2" || target == "avx2-novnni" || target == "avx512";
    k.weight_bits = id == FormatId::q8 ? (avx2 ? 15 : 16) : avx2 && bits > 0 ? 15 : 8;
    k.weight_span_pages = 1;
    if (bits > 0) k.value_rel_error = int8_table_error(d, bits);
  }
  return k;
}

}  // namespace

Int8Table int8_table(int head_dim, int bits) {
  const format::Codebook& cb = format::codebook(head_dim, bits);
  const int n = 1 << bits;
  const double cmax = std::fabs(cb.centroids.back());
  Int8Table best;
  best.rel_error = 1e30;
  for (int top = 96; top <= 127; ++top) {
    Int8Table t;
    t.scale = static_cast<float>(cmax / top);
    for (int i = 0; i < 16; ++i) {
      const double c = cb.centroids[i % n];
      t.codes[i] = static_cast<int>(std::round(c / static_cast<double>(t.scale)));
      t.rel_error =
          std::fmax(t.rel_error, std::fabs(t.codes[i] * double(t.scale) - c) / std::fabs(c));
    }
    if (t.rel_error < best.rel_error) best = t;
  }
  return best;
}

int turbo_mse_bits(format::FormatId id) {
  switch (id) {
    case FormatId::turbo2:
    case FormatId::turbo3_qjl:
      return 2;
    case FormatId::turbo3:
    case FormatId::turbo4_qjl:
      return 3;
    case FormatId::turbo4:
      return 4;
    default:
      return 0;
  }
}

attention::KernelInfo expected_kernel(const format::Codec& codec, const attention::Params& params) {
  if (params.codec_ops) return attention::KernelInfo{"codec ops"};
  return codec.config().role == format::Role::K ? expected_key(codec)
                                                : expected_value(codec, params.exact_value_weights);
}

}  // namespace kvpack::testing
