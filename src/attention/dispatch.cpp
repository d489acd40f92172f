// Chooses the kernels for a codec: its format's specialised kernel where one exists for the
// geometry, else the codec kernels (the same format read through its role operations; never a
// different format).
#include "attention/kernels.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace detail {

const KKernel& select_k_kernel(const format::Codec& codec, bool codec_ops) {
  if (!codec_ops) {
    if (const KKernel* k = float_k_kernel(codec)) return *k;
    if (const KKernel* k = int_k_kernel(codec)) return *k;
    if (const KKernel* k = turbo_k_kernel(codec)) return *k;
    if (const KKernel* k = kivi_k_kernel(codec)) return *k;
  }
  return codec_k_kernel();
}

const VKernel& select_v_kernel(const format::Codec& codec, bool codec_ops, bool exact_weights) {
  if (!codec_ops) {
    if (const VKernel* v = float_v_kernel(codec)) return *v;
    if (const VKernel* v = value_kernel(codec, exact_weights)) return *v;
  }
  return codec_v_kernel();
}

}  // namespace detail

KernelInfo kernel_info(const format::Codec& codec, const Params& params) {
  KernelInfo out;
  if (codec.config().role == format::Role::K) {
    const detail::KKernel& k = detail::select_k_kernel(codec, params.codec_ops);
    out.name = std::string(k.name);
    out.query_bits = k.query_bits;
    out.query_group = k.query_group;
    out.key_rel_error = k.key_rel_error ? k.key_rel_error(codec) : 0.0;
  } else {
    const detail::VKernel& v =
        detail::select_v_kernel(codec, params.codec_ops, params.exact_value_weights);
    out.name = std::string(v.name);
    out.weight_bits = v.weight_bits ? v.weight_bits() : 0;
    out.weight_span_pages = out.weight_bits > 0 ? 1 : 0;  // per page (cpu/value_kernels.cpp)
    out.value_rel_error = v.value_rel_error ? v.value_rel_error(codec) : 0.0;
  }
  if (out.name != "codec ops") {  // "<format> <kernel kind> (<Highway target>)"
    out.name =
        std::string(codec.info().name) + " " + out.name + " (" + detail::simd_target_name() + ")";
  }
  return out;
}

}  // namespace kvpack::attention
