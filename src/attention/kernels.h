// Internal: the kernel table. A K kernel scores a chunk of full pages of one KV head for a set of
// query rows; a V kernel accumulates weighted values of the same pages. Each format may have a
// specialised kernel per role (cpu/*.cpp, Highway with runtime dispatch); every format also has
// the codec kernels, which call its own role operations, so every K/V pair works. The page loop
// (span.cpp) composes one K kernel and one V kernel with the online softmax.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attention/prefetch.h"
#include "kvpack/format.h"

namespace kvpack::attention::detail {

// The blocks one kernel call reads: pages [0, n_pages) of a chunk x KV heads [h0, h0 + n_heads).
// A page slice holds its heads' blocks back to back, so block (i, h) is slices[i] + (h0 + h) *
// head_bytes and the heads of one page are one contiguous range: kernels visit blocks page-major
// (page i's heads in order, then page i + 1's), which is memory order.
struct BlockSet {
  const uint8_t* const* slices = nullptr;  // [n_pages] page slice starts of this role
  int n_pages = 0;
  int h0 = 0;
  int n_heads = 1;
  size_t head_bytes = 0;

  const uint8_t* at(int page, int head) const {
    return slices[page] + static_cast<size_t>(h0 + head) * head_bytes;
  }
};

// Shapes: `rows` query rows per head; row h * rows + r is head h's row r. logits and weights are
// [n_heads * rows][stride] with page i's tokens at columns i * page_tokens ...; qbuf is
// [n_heads * rows][query_bytes]; acc is [n_heads * rows][codec.acc_floats()]. Every page is full
// (page_tokens tokens).
struct KKernel {
  std::string_view name;  // the kind, e.g. "int8-dot"; KernelInfo prefixes the format's name
  int query_bits = 0;     // see attention::KernelInfo
  int query_group = 0;    // channels per query scale when query_bits > 0
  // Bytes of one prepared query row.
  size_t (*query_bytes)(const format::Codec& codec);
  // qbuf: [rows][query_bytes] from q: [rows][q_stride] f32 rows of KV head `head`, already
  // multiplied by the logit scale.
  void (*prepare)(const format::Codec& codec, int head, const float* q, int rows, size_t q_stride,
                  uint8_t* qbuf);
  // logits[h * rows + r][i * page_tokens + t] = <q_hr, k_t> of block (i, h) (scaled as q was).
  void (*score)(const format::Codec& codec, const BlockSet& blocks, const uint8_t* qbuf, int rows,
                float* logits, size_t stride, Prefetcher& pf);
  // Bound on the relative error the kernel's own reading of key elements adds (e.g. an int8
  // centroid table); nullptr = none. See attention::KernelInfo::key_rel_error.
  double (*key_rel_error)(const format::Codec& codec) = nullptr;
};

struct VKernel {
  std::string_view name;  // the kind, e.g. "int-weights"
  // acc[h * rows + r][:] += sum over the tokens t of block (i, h) of w[h * rows + r][i * T + t] *
  // v_t (in the codec's acc basis).
  void (*accumulate)(const format::Codec& codec, const BlockSet& blocks, const float* w,
                     size_t w_stride, int rows, float* acc, Prefetcher& pf);
  // Integer weight bits on the target dispatch picks now (see attention::KernelInfo); nullptr:
  // f32 weights.
  int (*weight_bits)() = nullptr;
  // Bound on the relative error of the kernel's own reading of value elements; nullptr = none.
  double (*value_rel_error)(const format::Codec& codec) = nullptr;
};

// The kernels for this codec: the format's specialised kernel when it has one for the codec's
// geometry, else the codec kernels. `codec_ops` forces the codec kernels.
// exact_weights: the value kernel keeps weights in f32 (Params::exact_value_weights).
const KKernel& select_k_kernel(const format::Codec& codec, bool codec_ops);
const VKernel& select_v_kernel(const format::Codec& codec, bool codec_ops,
                               bool exact_weights = false);

// The kernels that call the codec's role operations (codec_kernels.cpp).
const KKernel& codec_k_kernel();
const VKernel& codec_v_kernel();

// Specialised kernels of the float formats and fp8 (cpu/float_kernels.cpp): nullptr when the
// format or geometry has none.
const KKernel* float_k_kernel(const format::Codec& codec);
const VKernel* float_v_kernel(const format::Codec& codec);

// Integer-code K kernels (cpu/int_key_kernels.cpp: q8, q4, q4a); nullptr when the format or
// geometry has none.
const KKernel* int_k_kernel(const format::Codec& codec);

// TurboQuant K kernels (cpu/turbo_kernels.cpp); nullptr when the format or geometry has none.
const KKernel* turbo_k_kernel(const format::Codec& codec);

// KIVI K kernels (cpu/kivi_kernels.cpp); nullptr when the format or geometry has none.
const KKernel* kivi_k_kernel(const format::Codec& codec);

// V kernels of the integer and table codes in token quads (cpu/value_kernels.cpp: q8, q4, q4a,
// turbo4), integer weights or exact f32 ones; nullptr when the format or geometry has none.
const VKernel* value_kernel(const format::Codec& codec, bool exact_weights);

// The Highway target the specialised kernels run on here, e.g. "AVX3_DL".
const char* simd_target_name();

// Kernels for the unencoded f32 tail, token-major rows [n][row_stride] (cpu/tail_kernels.cpp).
// q: [rows][dim] f32 scaled; logits/w: [rows][stride]; acc: [rows][dim].
void score_tail(const float* k, size_t row_stride, int n, int dim, const float* q, int rows,
                float* logits, size_t stride);
void accumulate_tail(const float* v, size_t row_stride, int n, int dim, const float* w,
                     size_t w_stride, int rows, float* acc);

// The online-softmax step for one chunk (cpu/softmax.cpp), in log2 units: logits are
// log2(e) * scaled <q, k> (the query carries the factor; CallContext::fold). For each row r:
// optionally soft-caps the logits (x = log2(e) * softcap * tanh(x), x arriving divided by the
// cap), masks columns outside [lo[r], hi[r]) to weight 0, then turns logits into weights
// 2^(x - m_new) in place with m_new = max(m[r], max x), and updates l[r] = l[r] * alpha[r] +
// sum(weights) where alpha[r] = 2^(m[r] - m_new) is written out for the caller to rescale acc.
// Rows with no unmasked column keep m, l and get alpha 1 and zero weights. The weights carry a
// relative error below attention::kExpRelError.
void softmax_step(float* logits, size_t stride, int rows, int n, const int* lo, const int* hi,
                  float softcap, float* m, float* l, float* alpha);

}  // namespace kvpack::attention::detail
