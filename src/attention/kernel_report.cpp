// Which kernels read each layer of a cache, for the tools to print (report_kernels).
#include <fmt/format.h>

#include "base/simd_target.h"
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

// "q8 int8-dot (AVX2)", or "q8 codec ops".
std::string describe(const format::Codec& codec, const KernelInfo& k) {
  if (k.name != "codec ops") return k.name;
  return fmt::format("{} {}", format::info(codec.info().id).name, k.name);
}

std::string layer_range(int first, int last) {
  return first == last ? fmt::format("layer {}", first) : fmt::format("layers {}-{}", first, last);
}

std::string fallback_warning(const format::Codec& codec, int layer) {
  return fmt::format(
      "layer {}: {} {} at head dim {} and {}-token pages has no SIMD kernel; it is read through "
      "its codec operations (correct, much slower)",
      layer, format::info(codec.info().id).name,
      codec.config().role == format::Role::K ? "keys" : "values", codec.head_dim(),
      codec.page_tokens());
}

}  // namespace

KernelReport report_kernels(const cache::Cache& cache, const Params& params) {
  KernelReport out;
  out.target = active_simd_target();
  const int n = cache.config().n_layers;
  std::string last;
  int first = 0;
  for (int l = 0; l <= n; ++l) {
    std::string line;
    if (l < n) {
      const format::Codec& k = cache.k_codec(l);
      const format::Codec& v = cache.v_codec(l);
      const KernelInfo ki = kernel_info(k, params), vi = kernel_info(v, params);
      line = "K " + describe(k, ki) + ", V " + describe(v, vi);
      if (ki.name == "codec ops" && !params.codec_ops) {
        out.fallbacks.push_back(fallback_warning(k, l));
      }
      if (vi.name == "codec ops" && !params.codec_ops) {
        out.fallbacks.push_back(fallback_warning(v, l));
      }
    }
    if (l > 0 && line != last) {
      out.layers.push_back(layer_range(first, l - 1) + ": " + last);
      first = l;
    }
    last = line;
  }
  return out;
}

}  // namespace kvpack::attention
