// Model shape from GGUF metadata, following llama.cpp's key conventions ({arch}.block_count,
// {arch}.attention.*). Only metadata and tensor infos are read, never tensor data.
#include "plan/gguf_shape.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "base/error.h"

namespace kvpack::plan {
namespace {

constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 65536;
constexpr int64_t kMaxHeadDim = 65536;
constexpr int64_t kMaxContext = int64_t{1} << 40;

// Sliding-pattern period where the architecture fixes it in code rather than metadata (as
// llama.cpp does): layer l slides unless l % period == period - 1.
int default_swa_period(std::string_view arch) {
  if (arch == "gemma2") return 2;
  if (arch == "gemma3") return 6;
  return 0;
}

class ShapeReader {
 public:
  ShapeReader(const model::GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  std::string key(std::string_view suffix) const { return arch_ + "." + std::string(suffix); }

  int64_t checked(std::string_view suffix, int64_t v, int64_t lo, int64_t hi) const {
    if (v < lo || v > hi) {
      fail("{}: metadata '{}' is {}, expected {} to {}", f_.path(), key(suffix), v, lo, hi);
    }
    return v;
  }

  int64_t require(std::string_view suffix, int64_t lo, int64_t hi) const {
    return checked(suffix, f_.require_int(key(suffix)), lo, hi);
  }

  std::optional<int64_t> optional(std::string_view suffix, int64_t lo, int64_t hi) const {
    const auto v = f_.get_int(key(suffix));
    if (!v) return std::nullopt;
    return checked(suffix, *v, lo, hi);
  }

  // A count that is one integer for every layer or an array with one entry per layer;
  // nullopt when the key is absent.
  std::optional<std::vector<int>> per_layer(std::string_view suffix, int n_layers, int64_t lo,
                                            int64_t hi) const {
    const model::GgufValue* v = f_.find(key(suffix));
    if (v == nullptr) return std::nullopt;
    if (v->type != model::GgufType::array) {
      return std::vector<int>(static_cast<size_t>(n_layers),
                              static_cast<int>(require(suffix, lo, hi)));
    }
    const std::vector<int64_t>& a = *f_.get_ints(key(suffix));
    if (a.size() != static_cast<size_t>(n_layers)) {
      fail("{}: metadata '{}' has {} entries, expected one per layer ({})", f_.path(), key(suffix),
           a.size(), n_layers);
    }
    std::vector<int> out;
    for (int64_t x : a) out.push_back(static_cast<int>(checked(suffix, x, lo, hi)));
    return out;
  }

  // Which layers slide: {arch}.attention.sliding_window_pattern as a period or a per-layer bool
  // array, else the architecture's fixed period. Without either, a sliding_window key alone is
  // ignored (every layer counted as full): over- rather than under-estimating memory.
  std::vector<bool> sliding(int n_layers) const {
    std::vector<bool> out(static_cast<size_t>(n_layers), false);
    const std::string pkey = key("attention.sliding_window_pattern");
    const model::GgufValue* p = f_.find(pkey);
    if (p != nullptr && p->type == model::GgufType::array) {
      const std::vector<int64_t>& a = *f_.get_ints(pkey);
      if (a.size() != static_cast<size_t>(n_layers)) {
        fail("{}: metadata '{}' has {} entries, expected one per layer ({})", f_.path(), pkey,
             a.size(), n_layers);
      }
      for (size_t l = 0; l < a.size(); ++l) out[l] = a[l] != 0;
      return out;
    }
    int64_t period = default_swa_period(arch_);
    if (p != nullptr) period = require("attention.sliding_window_pattern", 0, kMaxLayers);
    for (int l = 0; l < n_layers && period > 0; ++l) out[l] = l % period != period - 1;
    return out;
  }

 private:
  const model::GgufFile& f_;
  std::string arch_;
};

std::string display_name(const model::GgufFile& f) {
  if (const model::GgufValue* v = f.find("general.name")) {
    if (const auto* s = std::get_if<std::string>(&v->scalar); s != nullptr && !s->empty()) {
      return *s;
    }
  }
  return std::filesystem::path(f.path()).filename().string();
}

// Native and longest context: YaRN scaling stretches original_context_length by its factor.
void read_context(const model::GgufFile& f, const ShapeReader& r, ModelShape& m) {
  const int64_t ctx = r.require("context_length", 1, kMaxContext);
  m.native_context = ctx;
  m.max_context = ctx;
  const auto type = f.get_string(r.key("rope.scaling.type"));
  const auto factor = f.get_float(r.key("rope.scaling.factor"));
  if (type == "yarn" && factor && std::isfinite(*factor) && *factor > 1 && *factor < 1024) {
    const int64_t orig =
        r.optional("rope.scaling.original_context_length", 1, kMaxContext).value_or(ctx);
    m.native_context = std::min(orig, ctx);
    m.max_context = std::max(ctx, static_cast<int64_t>(static_cast<double>(orig) * *factor));
  }
}

void read_weights(const model::GgufFile& f, std::optional<double> weight_bits, ModelShape& m) {
  double params = 0;
  for (const auto& t : f.tensors()) params += static_cast<double>(t.n_elements());
  m.params = params;
  if (weight_bits) {
    if (!(*weight_bits > 0 && *weight_bits <= 64)) {
      fail("invalid weight bits {}: expected a number above 0 and at most 64", *weight_bits);
    }
    m.weight_bytes = static_cast<uint64_t>(params * *weight_bits / 8.0);
    m.weights_from = fmt::format("{:.3g}B params x {:.3g} bits", params / 1e9, *weight_bits);
    return;
  }
  if (f.tensors().empty()) {
    fail("{}: has no tensors (a vocab-only file?); give --weights-bits to size weights", f.path());
  }
  m.weight_bytes = f.tensor_bytes();
  m.weights_from = fmt::format("GGUF tensor sizes ({} tensors)", f.tensors().size());
}

}  // namespace

ModelShape gguf_shape(const model::GgufFile& f, std::optional<double> weight_bits) {
  ModelShape m;
  m.arch = f.require_string("general.architecture");
  m.name = display_name(f);
  m.source = f.path();
  const ShapeReader r(f, m.arch);
  const int n_layers = static_cast<int>(r.require("block_count", 1, kMaxLayers));
  const auto q = r.per_layer("attention.head_count", n_layers, 0, kMaxHeads);
  if (!q) fail("{}: missing metadata '{}'", f.path(), r.key("attention.head_count"));
  // Without head_count_kv every query head has its own K/V (multi-head attention).
  const std::vector<int> kv =
      r.per_layer("attention.head_count_kv", n_layers, 0, kMaxHeads).value_or(*q);
  const std::vector<bool> sliding = r.sliding(n_layers);
  for (int l = 0; l < n_layers; ++l) {
    m.layers.push_back({(*q)[l], kv[l], sliding[static_cast<size_t>(l)]});
  }
  if (m.kv_layers() == 0)
    fail("{}: no layer has K/V heads ({}.attention.head_count_kv)", f.path(), m.arch);

  // Head dims default to embedding_length / head_count, as llama.cpp derives them.
  auto dk = r.optional("attention.key_length", 1, kMaxHeadDim);
  if (!dk) {
    const int64_t embd = r.require("embedding_length", 1, int64_t{1} << 24);
    if ((*q)[0] == 0 || embd % (*q)[0] != 0) {
      fail("{}: cannot derive the head dim: {}.embedding_length {} over {} heads", f.path(), m.arch,
           embd, (*q)[0]);
    }
    dk = embd / (*q)[0];
  }
  m.head_dim_k = static_cast<int>(*dk);
  m.head_dim_v =
      static_cast<int>(r.optional("attention.value_length", 1, kMaxHeadDim).value_or(*dk));
  if (m.sliding_layers() > 0) m.window = r.require("attention.sliding_window", 1, kMaxContext);
  read_context(f, r, m);
  read_weights(f, weight_bits, m);
  return m;
}

ModelShape gguf_shape(const std::string& path, std::optional<double> weight_bits) {
  return gguf_shape(model::GgufFile::open(path), weight_bits);
}

}  // namespace kvpack::plan
