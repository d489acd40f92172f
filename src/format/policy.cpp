// KVPolicy: parsing and printing the --kv syntax, and resolving a layer's formats.
// Layer indices lie within +-kMaxLayers and a spec names at most kMaxLayerEntries of them.
//
//   spec     := base (';' override)*
//   base     := assign (',' assign)*          e.g. k=turbo4,v=q8
//   override := layers ':' assign (',' assign)*  e.g. 0,1,-2,-1:k=q8
//   layers   := item (',' item)*, item := INT | INT '..' INT   (negative: from the end)
//   assign   := ('k' | 'v') '=' FORMAT
#include <charconv>
#include <tuple>

#include "base/error.h"
#include "kvpack/format.h"

namespace kvpack::format {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t i = s.find(sep);
    parts.push_back(trim(s.substr(0, i)));
    if (i == std::string_view::npos) return parts;
    s.remove_prefix(i + 1);
  }
}

// Bounds on what a spec may name, checked before ranges are expanded. No model comes close to
// 4096 layers (the largest have about 130); an index past a model's layers is refused later
// by validate(), with the model's count.
constexpr int kMaxLayers = 4096;
constexpr int64_t kMaxLayerEntries = 4 * kMaxLayers;

[[noreturn]] void bad(std::string_view spec, std::string_view token, std::string_view why) {
  fail("invalid --kv '{}': {} at '{}'", spec, why, token);
}

int parse_int(std::string_view spec, std::string_view token) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (token.empty() || ec != std::errc() || ptr != token.data() + token.size()) {
    bad(spec, token, "expected a layer index");
  }
  return v;
}

// Applies "k=FMT" or "v=FMT" to k/v.
void parse_assign(std::string_view spec, std::string_view token, std::optional<FormatId>& k,
                  std::optional<FormatId>& v) {
  const size_t eq = token.find('=');
  if (eq == std::string_view::npos) bad(spec, token, "expected k=FORMAT or v=FORMAT");
  const std::string_view role = trim(token.substr(0, eq));
  const std::string_view name = trim(token.substr(eq + 1));
  const FormatInfo* f = find_format(name);
  if (f == nullptr) {
    try {
      parse_format(name);  // throws with the list of known names
    } catch (const Error& e) {
      fail("invalid --kv '{}': {}", spec, e.message());
    }
  }
  if (role == "k" || role == "K") {
    if (!f->supports(Role::K))
      bad(spec, token, fmt::format("format {} cannot store keys", f->name));
    k = f->id;
  } else if (role == "v" || role == "V") {
    if (!f->supports(Role::V)) {
      bad(spec, token, fmt::format("format {} cannot store values", f->name));
    }
    v = f->id;
  } else {
    bad(spec, token, "expected k= or v=");
  }
}

// A layer index as written, checked against kMaxLayers before any range is expanded.
int parse_layer(std::string_view spec, std::string_view token) {
  const int l = parse_int(spec, token);
  if (l >= kMaxLayers || l < -kMaxLayers) {
    bad(spec, token,
        fmt::format("layer {} is beyond the {} layers a policy can name", l, kMaxLayers));
  }
  return l;
}

// Expands the layer list into `layers`; `entries` counts the indices of the whole spec, which
// are bounded too (a spec repeating 0..4095 thousands of times would otherwise fill memory).
void parse_layers(std::string_view spec, std::string_view list, std::vector<int>& layers,
                  int64_t& entries) {
  for (std::string_view item : split(list, ',')) {
    const size_t dots = item.find("..");
    const int a = parse_layer(spec, trim(item.substr(0, dots)));
    const int b =
        dots == std::string_view::npos ? a : parse_layer(spec, trim(item.substr(dots + 2)));
    if ((a < 0) != (b < 0) || a > b) bad(spec, item, "expected a range a..b with a <= b");
    entries += int64_t{b} - a + 1;
    if (entries > kMaxLayerEntries) {
      bad(spec, item, fmt::format("more than {} layer indices in one policy", kMaxLayerEntries));
    }
    for (int i = a; i <= b; ++i) layers.push_back(i);
  }
}

}  // namespace

KVPolicy KVPolicy::parse(std::string_view spec) {
  if (trim(spec).empty()) fail("invalid --kv '': expected k=FORMAT,v=FORMAT");
  KVPolicy p;
  const std::vector<std::string_view> sections = split(spec, ';');
  std::optional<FormatId> k, v;
  int64_t entries = 0;  // layer indices named so far
  for (std::string_view token : split(sections[0], ',')) parse_assign(spec, token, k, v);
  if (k) p.base_.k = *k;
  if (v) p.base_.v = *v;
  for (size_t s = 1; s < sections.size(); ++s) {
    const std::string_view section = sections[s];
    const size_t colon = section.find(':');
    if (colon == std::string_view::npos) bad(spec, section, "expected LAYERS:k=FORMAT,...");
    Override o;
    parse_layers(spec, section.substr(0, colon), o.layers, entries);
    for (std::string_view token : split(section.substr(colon + 1), ',')) {
      parse_assign(spec, token, o.k, o.v);
    }
    p.overrides_.push_back(std::move(o));
  }
  return p;
}

KVPolicy KVPolicy::from_llama_flags(std::string_view ctk, std::string_view ctv) {
  std::string spec;
  if (!ctk.empty()) spec += "k=" + std::string(ctk);
  if (!ctv.empty()) spec += (spec.empty() ? "v=" : ",v=") + std::string(ctv);
  return spec.empty() ? KVPolicy() : parse(spec);
}

void KVPolicy::add_override(Override o) {
  overrides_.push_back(std::move(o));
}

LayerFormats KVPolicy::layer(int layer, int n_layers) const {
  LayerFormats r = base_;
  for (const auto& o : overrides_) {
    for (int l : o.layers) {
      if ((l < 0 ? n_layers + l : l) == layer) {
        if (o.k) r.k = *o.k;
        if (o.v) r.v = *o.v;
        break;
      }
    }
  }
  return r;
}

std::string KVPolicy::to_string() const {
  std::string s = "k=" + std::string(info(base_.k).name) + ",v=" + std::string(info(base_.v).name);
  for (const auto& o : overrides_) {
    s += ';';
    for (size_t i = 0; i < o.layers.size(); ++i) {
      if (i) s += ',';
      s += std::to_string(o.layers[i]);
    }
    s += ':';
    if (o.k) s += "k=" + std::string(info(*o.k).name);
    if (o.v) s += std::string(o.k ? "," : "") + "v=" + std::string(info(*o.v).name);
  }
  return s;
}

void KVPolicy::validate(int n_layers, int head_dim_k, int head_dim_v, int page_tokens) const {
  for (const auto& o : overrides_) {
    for (int l : o.layers) {
      if (l >= n_layers || l < -n_layers) {
        fail("--kv '{}': layer {} does not exist (the model has {} layers)", to_string(), l,
             n_layers);
      }
    }
  }
  for (int l = 0; l < n_layers; ++l) {
    const LayerFormats f = layer(l, n_layers);
    for (const auto& [role, id, dim] :
         {std::tuple{Role::K, f.k, head_dim_k}, std::tuple{Role::V, f.v, head_dim_v}}) {
      const std::string why = why_unsupported(id, CodecConfig{role, dim, page_tokens, 1, 0});
      if (!why.empty()) {
        fail("--kv '{}': layer {} {} format {} cannot serve head dim {}, page size {}: {}",
             to_string(), l, role == Role::K ? "K" : "V", info(id).name, dim, page_tokens, why);
      }
    }
  }
}

bool KVPolicy::operator==(const KVPolicy& other) const {
  if (!(base_ == other.base_) || overrides_.size() != other.overrides_.size()) return false;
  for (size_t i = 0; i < overrides_.size(); ++i) {
    const auto& a = overrides_[i];
    const auto& b = other.overrides_[i];
    if (a.layers != b.layers || a.k != b.k || a.v != b.v) return false;
  }
  return true;
}

}  // namespace kvpack::format
