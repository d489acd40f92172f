// KV storage formats: the registry, the codec interface attention reads through, and the K/V
// policy (which format each layer's keys and values use). docs/formats.md gives byte layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvpack::format {

enum class Role : uint8_t { K = 1, V = 2 };
inline constexpr uint8_t kRoleK = 1;
inline constexpr uint8_t kRoleV = 2;

// Every format kvpack stores, in registry order. A new format is one entry here, one registry
// row, one codec and its tests (which loop over the registry).
enum class FormatId : uint8_t {
  f32,
  f16,
  bf16,
  fp8,         // e4m3, one f16 scale per token and head
  q8,          // int8 symmetric, f16 scale per group of 32 (llama.cpp q8_0)
  q4,          // int4 symmetric, f16 scale per group of 32 (q4_0's layout)
  q4a,         // int4 asymmetric, f16 scale + f16 min per group of 32 (q4_1)
  kivi4,       // K only: 4-bit per channel across the page's tokens (KIVI)
  kivi2,       // K only: 2-bit per channel across the page's tokens (KIVI)
  turbo2,      // TurboQuant MSE: rotation + 2-bit Lloyd-Max codebook + f16 norm
  turbo3,      // ... 3-bit
  turbo4,      // ... 4-bit
  turbo3_qjl,  // K only: 2-bit TurboQuant MSE + 1-bit QJL residual sketch
  turbo4_qjl,  // K only: 3-bit TurboQuant MSE + 1-bit QJL residual sketch
};
inline constexpr int kFormatCount = 14;

// The geometry one codec serves: one role of one layer, all of that layer's KV heads.
struct CodecConfig {
  Role role = Role::K;
  int head_dim = 128;
  int page_tokens = 32;
  int n_heads = 1;    // KV heads in the layer; rotations and sketches differ per head
  uint64_t seed = 0;  // per-layer seed (rotations, QJL sketch); see layer_seed()
};

class Codec;

// One head block's layout as plain data (docs/formats.md draws each format's): what a kernel
// needs to read the codes in place, so attention selects and parameterises its kernels from
// these facts rather than from format ids. Offsets are bytes from the block's start; kAbsent
// marks a field the format does not have. T = page_tokens, d = head_dim below.
struct BlockLayout {
  static constexpr size_t kAbsent = static_cast<size_t>(-1);
  enum class Element : uint8_t {
    f32,
    f16,
    bf16,      // the values themselves
    e4m3,      // fp8 codes, times the token's f16 scale
    integer,   // (code - code_offset) x step (+ min); 8-bit codes are signed bytes
    centroid,  // codebook[code] x the token's norm, in the codec's rotated basis
  };
  enum class Order : uint8_t {
    channel_major,  // [d][T] elements (float keys)
    token_major,    // [T][d] elements (float values)
    key_planes,     // format/planes.h: a 64-byte line is 16 tokens x 4 bytes of one channel slab
    value_planes,   // format/planes.h: a 64-byte line is 16 channel slots x 4 tokens
  };
  Element element = Element::f32;
  Order order = Order::channel_major;
  int planes[2] = {32, 0};    // bits of each code plane in order (turbo3: 2, then 1 for bit 2)
  int code_offset = 0;        // integer: the element is code - code_offset (q4: 8)
  int group = 0;              // integer: channels sharing one step (1 when per_channel)
  bool per_channel = false;   // steps and mins per channel over the page (kivi), not per token
  int codebook_bits = 0;      // centroid: format::codebook(d, codebook_bits)
  bool sign_in_code = false;  // QJL keys: code | sign << codebook_bits in one 4-bit plane
  size_t codes = 0;           // the first code plane
  size_t steps = kAbsent;     // integer: f16 [d / group][T], or f16 [d] when per_channel
  size_t mins = kAbsent;      // integer: f16, the steps' shape
  size_t scales = kAbsent;    // e4m3: f16 [T]
  size_t norms = kAbsent;     // centroid: f16 [T]
  size_t gammas = kAbsent;    // QJL: f16 [T], the MSE residual's norm
  size_t signs = kAbsent;     // QJL: a 1-bit plane of sign(S r) (absent when sign_in_code)
  size_t payload = 0;         // bytes before the block's 64-byte padding

  int code_bits() const { return planes[0] + planes[1]; }
};

// One row of the registry: everything the CLI, planner and bench need without a codec.
struct FormatInfo {
  FormatId id;
  std::string_view name;         // canonical, e.g. "q8"
  std::string_view aliases;      // space-separated other accepted names, e.g. "q8_0"
  uint8_t roles;                 // kRoleK | kRoleV
  std::string_view description;  // one line for `kvpack formats`
  // Bytes one head's block of a page needs before 64-byte alignment (codes + scales + norms).
  size_t (*payload_bytes)(int head_dim, int page_tokens);
  // Empty when the format can serve this geometry and role; otherwise the reason it cannot.
  std::string (*unsupported)(const CodecConfig& config);
  std::unique_ptr<Codec> (*make)(const CodecConfig& config);

  bool supports(Role role) const { return (roles & static_cast<uint8_t>(role)) != 0; }
  // Bits per stored value including metadata (no alignment padding).
  double bits_per_value(int head_dim, int page_tokens = 32) const;
  // Bytes of one head's block in a page slice: the payload rounded up to 64 bytes.
  size_t head_bytes(int head_dim, int page_tokens) const;
};

// A codec encodes and reads one role (K or V) of one layer. A page slice holds n_heads blocks
// of head_bytes() each, head h at byte offset h * head_bytes(); attention walks a sequence's
// pages and calls the role operations on each block in place, never decoding the cache.
//
// Shapes: x, out: [n][head_dim] f32 for the first n tokens of a page (1 <= n <= page_tokens).
// Non-finite inputs never reach stored bits: encode maps NaN to 0 and +-Inf to the largest
// finite magnitude of the format (which then dominates its group's scale); the cache rejects
// non-finite appends before encoding.
class Codec {
 public:
  Codec(const FormatInfo& info, const CodecConfig& config);
  virtual ~Codec() = default;
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  const FormatInfo& info() const { return info_; }
  const CodecConfig& config() const { return config_; }
  int head_dim() const { return config_.head_dim; }
  int page_tokens() const { return config_.page_tokens; }
  size_t head_bytes() const { return head_bytes_; }
  size_t slice_bytes() const { return head_bytes_ * static_cast<size_t>(config_.n_heads); }
  // Where this codec's role puts each field of a head block.
  const BlockLayout& layout() const { return layout_; }

  // Encodes tokens 0..n-1 of `head` into block (head_bytes() bytes); bytes of tokens >= n are
  // unspecified afterwards.
  virtual void encode(int head, const float* x, int n, uint8_t* block) const = 0;
  // Reference decode (tests and debugging; attention never calls it).
  virtual void decode(int head, const uint8_t* block, int n, float* out) const = 0;

  // --- K role ---
  // Floats in one prepared query (rotated and/or sketched copy of q).
  virtual size_t query_floats() const { return static_cast<size_t>(head_dim()); }
  // qp: [query_floats()] from q: [head_dim], once per decode step and query head.
  virtual void prepare_query(int head, const float* q, float* qp) const;
  // logits[i * logits_stride + t] = <q_i, k_t> (unscaled) for i < n_q, t < n.
  // qp: [n_q][query_floats()] prepared for this block's head.
  virtual void score(const uint8_t* block, int n, const float* qp, int n_q, float* logits,
                     int logits_stride) const;

  // --- V role ---
  // Floats per query head in an accumulator (the format's basis, e.g. rotated for turbo).
  virtual size_t acc_floats() const { return static_cast<size_t>(head_dim()); }
  // acc[i][:] += sum_t w[i * w_stride + t] * v_t for i < n_q, t < n. acc: [n_q][acc_floats()].
  virtual void accumulate(const uint8_t* block, int n, const float* w, int w_stride, int n_q,
                          float* acc) const;
  // out: [n_q][head_dim] from acc: [n_q][acc_floats()] (inverse rotation happens here, once).
  virtual void finish(int head, const float* acc, int n_q, float* out) const;

 protected:
  const FormatInfo& info_;
  CodecConfig config_;
  size_t head_bytes_;
  BlockLayout layout_;  // filled in by each codec's constructor
};

// ---- registry ----
std::span<const FormatInfo> all_formats();
const FormatInfo& info(FormatId id);
// Canonical name or alias, case-insensitive; nullptr when unknown.
const FormatInfo* find_format(std::string_view name);
// As find_format, but throws Error("unknown KV format 'x' (known: f32, f16, ...)").
FormatId parse_format(std::string_view name);
// Empty when the format can serve this role and geometry; otherwise the reason it cannot.
std::string why_unsupported(FormatId id, const CodecConfig& config);
// Builds a codec; throws Error naming the format, role and geometry when it cannot serve them.
std::unique_ptr<Codec> make_codec(FormatId id, const CodecConfig& config);
// The seed a layer's codecs use: fixed per (model seed, layer, role) so every run agrees.
uint64_t layer_seed(int layer, Role role, uint64_t model_seed = 0);
// Group size for per-group scales: 32 if head_dim allows, else 16, else 8 (a group never spans
// two heads). 0 when head_dim is not a multiple of 8.
int group_size(int head_dim);

// ---- K/V policy ----
struct LayerFormats {
  FormatId k = FormatId::f16;
  FormatId v = FormatId::f16;
  bool operator==(const LayerFormats&) const = default;
};

// One K format and one V format for every layer, with optional per-layer overrides:
//   k=FORMAT,v=FORMAT[;LAYERS:k=FORMAT,v=FORMAT...]
// LAYERS is a comma list of indices and ranges (a..b); negative indices count from the end.
// Later overrides win. See docs/cli.md.
class KVPolicy {
 public:
  struct Override {
    std::vector<int> layers;  // as written; negatives resolved against n_layers in layer()
    std::optional<FormatId> k;
    std::optional<FormatId> v;
  };

  KVPolicy() = default;
  KVPolicy(FormatId k, FormatId v) : base_{k, v} {}

  // Throws Error naming the offending token, e.g. "invalid --kv 'k=q9': unknown KV format 'q9'".
  static KVPolicy parse(std::string_view spec);
  // llama.cpp's -ctk / -ctv: either may be empty (keeps f16).
  static KVPolicy from_llama_flags(std::string_view ctk, std::string_view ctv);

  LayerFormats layer(int layer, int n_layers) const;
  const LayerFormats& base() const { return base_; }
  const std::vector<Override>& overrides() const { return overrides_; }
  void add_override(Override o);
  bool uniform() const { return overrides_.empty(); }
  // Canonical spec text; parse(to_string()) gives an equal policy.
  std::string to_string() const;
  // Checks every layer index exists and every layer's formats serve the geometry; throws Error
  // naming the layer, role and format otherwise.
  void validate(int n_layers, int head_dim_k, int head_dim_v, int page_tokens) const;

  bool operator==(const KVPolicy&) const;

 private:
  LayerFormats base_;
  std::vector<Override> overrides_;
};

}  // namespace kvpack::format
