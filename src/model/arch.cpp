#include "model/arch.h"

#include "base/error.h"

namespace kvpack::model {
namespace {

using enum RopeOrdering;
using enum FfnKind;

// Supported rows are switched on as the forward pass learns their columns.
// clang-format off
constexpr ArchTraits kArchitectures[] = {
  // name      supported rope         bias   qk_norm post   embed  ffn         caps: attn final
  //   swa: period window base     unscaled  27B rule
  {"llama",    true,     interleaved, false, false,  false, false, swiglu,     0,  0,
       0,      0,     0,       false,    0},
  {"qwen2",    false,    neox,        true,  false,  false, false, swiglu,     0,  0,
       0,      0,     0,       false,    0},
  {"qwen3",    false,    neox,        false, true,   false, false, swiglu,     0,  0,
       0,      0,     0,       false,    0},
  {"qwen3moe", false,    neox,        false, true,   false, false, moe_swiglu, 0,  0,
       0,      0,     0,       false,    0},
  {"gemma2",   false,    neox,        false, false,  true,  true,  geglu,      50, 30,
       2,      4096,  0,       false,    46},
  {"gemma3",   false,    neox,        false, true,   true,  true,  geglu,      0,  0,
       6,      0,     10000.0, true,     62},
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
