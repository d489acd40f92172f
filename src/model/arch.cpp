#include "model/arch.h"

#include "base/error.h"

namespace kvpack::model {
namespace {

using enum RopeOrdering;
using enum FfnActivation;

// clang-format off
constexpr ArchTraits kArchitectures[] = {
  // name      supported rope         qkv_bias qk_norm post_norms embed_scale ffn        swa
  {"llama",    true,     interleaved, false,   false,  false,     false,      silu,      0},
  {"qwen2",    false,    neox,        true,    false,  false,     false,      silu,      0},
  {"qwen3",    false,    neox,        false,   true,   false,     false,      silu,      0},
  {"gemma2",   false,    neox,        false,   false,  true,      true,       gelu_tanh, 2},
  {"gemma3",   false,    neox,        false,   true,   true,      true,       gelu_tanh, 6},
};
// clang-format on

}  // namespace

std::span<const ArchTraits> all_architectures() {
  return kArchitectures;
}

const ArchTraits* find_architecture(std::string_view name) {
  for (const ArchTraits& a : kArchitectures) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::string out;
  for (const ArchTraits& a : kArchitectures) {
    if (!a.supported) continue;
    if (!out.empty()) out += ", ";
    out += a.name;
  }
  return out;
}

const ArchTraits& require_architecture(std::string_view name, std::string_view source) {
  const ArchTraits* a = find_architecture(name);
  if (a == nullptr) {
    fail("{}: unknown architecture '{}' (supported: {})", source, name, supported_architectures());
  }
  if (!a->supported) {
    fail("{}: architecture '{}' is not supported yet (supported: {})", source, name,
         supported_architectures());
  }
  return *a;
}

}  // namespace kvpack::model
