// libFuzzer target over the --kv policy parser (and llama.cpp's -ctk/-ctv form). Any input must
// parse or throw kvpack::Error, within the bounds the parser promises (layer indices within
// +-4096, at most 16384 of them: a range is checked before it is expanded). A policy that parses
// prints back (to_string) to a spec that parses to the same policy, and validate() against a
// model shape either accepts it or throws Error.
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kvpack/format.h"

namespace {

using kvpack::format::KVPolicy;

void check(const KVPolicy& p, uint8_t shape) {
  size_t entries = 0;
  for (const auto& o : p.overrides()) {
    entries += o.layers.size();
    for (int l : o.layers) KVPACK_ASSERT(l >= -4096 && l < 4096, "layer {}", l);
  }
  KVPACK_ASSERT(entries <= 16384, "{} layer entries", entries);
  const std::string text = p.to_string();
  KVPACK_ASSERT(KVPolicy::parse(text) == p, "'{}' does not parse back", text);
  try {
    const int layers = 1 + shape % 48;
    const int head_dim = 32 << (shape >> 6);  // 32, 64, 128, 256
    p.validate(layers, head_dim, head_dim, 32);
    for (int l = 0; l < layers; ++l) (void)p.layer(l, layers);
  } catch (const kvpack::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t shape = data[0];
  const std::string spec(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    check(KVPolicy::parse(spec), shape);
  } catch (const kvpack::Error&) {
  }
  // The same bytes as -ctk / -ctv values, split at the first newline.
  const size_t nl = spec.find('\n');
  try {
    check(KVPolicy::from_llama_flags(spec.substr(0, nl),
                                     nl == std::string::npos ? "" : spec.substr(nl + 1)),
          shape);
  } catch (const kvpack::Error&) {
  }
  return 0;
}
