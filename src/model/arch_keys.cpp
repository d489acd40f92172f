#include "model/arch_keys.h"

#include <cmath>

#include "base/error.h"
#include "model/gguf.h"

namespace kvpack::model {

ArchKeys::ArchKeys(const GgufFile& file, std::string_view arch)
    : f_(file), prefix_(std::string(arch) + ".") {}

std::string ArchKeys::key(std::string_view suffix) const {
  return prefix_ + std::string(suffix);
}

int64_t ArchKeys::in_range(std::string_view suffix, int64_t value, int64_t lo, int64_t hi) const {
  if (value < lo || value > hi) {
    fail("{}: metadata '{}' is {}, expected {} to {}", f_.path(), key(suffix), value, lo, hi);
  }
  return value;
}

int64_t ArchKeys::require(std::string_view suffix, int64_t lo, int64_t hi) const {
  return in_range(suffix, f_.require_int(key(suffix)), lo, hi);
}

std::optional<int64_t> ArchKeys::optional(std::string_view suffix, int64_t lo, int64_t hi) const {
  const auto v = f_.get_int(key(suffix));
  if (!v) return std::nullopt;
  return in_range(suffix, *v, lo, hi);
}

std::optional<std::vector<int>> ArchKeys::per_layer(std::string_view suffix, int n_layers,
                                                    int64_t lo, int64_t hi) const {
  const std::string k = key(suffix);
  const GgufValue* v = f_.find(k);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufType::array) {
    return std::vector<int>(static_cast<size_t>(n_layers),
                            static_cast<int>(require(suffix, lo, hi)));
  }
  const std::vector<int64_t>& a = *f_.get_ints(k);
  if (a.size() != static_cast<size_t>(n_layers)) {
    fail("{}: metadata '{}' has {} entries, expected one per layer ({})", f_.path(), k, a.size(),
         n_layers);
  }
  std::vector<int> out;
  out.reserve(a.size());
  for (int64_t x : a) out.push_back(static_cast<int>(in_range(suffix, x, lo, hi)));
  return out;
}

std::optional<double> ArchKeys::real(std::string_view suffix) const {
  const auto v = f_.get_float(key(suffix));
  if (v && !std::isfinite(*v)) fail("{}: metadata '{}' is {}", f_.path(), key(suffix), *v);
  return v;
}

std::optional<std::string> ArchKeys::string(std::string_view suffix) const {
  return f_.get_string(key(suffix));
}

}  // namespace kvpack::model
