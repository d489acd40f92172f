#include "model/quant_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "model/quant/codecs.h"

namespace kvpack::model {
namespace {

using A = ActType;

// ggml's type traits, the rows kvpack computes with. Sizes: ggml-common.h's block structs.
constexpr WeightTypeTraits kTypes[] = {
    {GgmlType::F32, 1, 4, A::kF32, false, codec::dequantize_f32, codec::quantize_f32},
    {GgmlType::F16, 1, 2, A::kF32, false, codec::dequantize_f16, codec::quantize_f16},
    {GgmlType::BF16, 1, 2, A::kF32, false, codec::dequantize_bf16, codec::quantize_bf16},
    {GgmlType::Q8_0, kQBlock, 34, A::kQ8_0, false, codec::dequantize_q8_0, codec::quantize_q8_0},
    {GgmlType::Q4_0, kQBlock, 18, A::kQ8_0, false, codec::dequantize_q4_0, codec::quantize_q4_0},
    {GgmlType::Q4_1, kQBlock, 20, A::kQ8_0, true, codec::dequantize_q4_1, codec::quantize_q4_1},
    {GgmlType::Q5_0, kQBlock, 22, A::kQ8_0, false, codec::dequantize_q5_0, codec::quantize_q5_0},
    {GgmlType::Q5_1, kQBlock, 24, A::kQ8_0, true, codec::dequantize_q5_1, codec::quantize_q5_1},
    {GgmlType::IQ4_NL, kQBlock, 18, A::kQ8_0, false, codec::dequantize_iq4_nl,
     codec::quantize_iq4_nl},
    {GgmlType::Q2_K, kQK, 84, A::kQ8_K, true, codec::dequantize_q2_k, codec::quantize_q2_k},
    {GgmlType::Q3_K, kQK, 110, A::kQ8_K, false, codec::dequantize_q3_k, codec::quantize_q3_k},
    {GgmlType::Q4_K, kQK, 144, A::kQ8_K, true, codec::dequantize_q4_k, codec::quantize_q4_k},
    {GgmlType::Q5_K, kQK, 176, A::kQ8_K, true, codec::dequantize_q5_k, codec::quantize_q5_k},
    {GgmlType::Q6_K, kQK, 210, A::kQ8_K, false, codec::dequantize_q6_k, codec::quantize_q6_k},
    {GgmlType::IQ4_XS, kQK, 136, A::kQ8_K, false, codec::dequantize_iq4_xs, codec::quantize_iq4_xs},
};

std::string type_name(GgmlType t) {
  return ggml_type_name(static_cast<uint32_t>(t));
}

void check_whole_blocks(const WeightTypeTraits& tr, int64_t n) {
  KVPACK_ASSERT(n >= 0 && n % tr.block == 0, "{} values do not fill {}-value {} blocks", n,
                tr.block, type_name(tr.type));
}

// The largest per-value error quantizing one activation block adds (see the header).
double act_step_bound(ActType a, const float* x) {
  const int n = act_block_size(a);
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (a == ActType::kQ8_0) {
    const double d = amax / 127.0f;
    const double d16 = f16_to_f32(f32_to_f16(amax / 127.0f));
    return d * (0.5 + 0x1p-14) + 127.0 * std::fabs(d - d16);
  }
  const float iscale = -127.0f / max;
  if (amax == 0.0f || !std::isfinite(iscale)) return amax;
  return std::fabs(1.0f / iscale) * (0.5 + 0x1p-14);
}

// The grid step of one activation block (its scale as stored).
double act_step(ActType a, const float* x) {
  const int n = act_block_size(a);
  std::vector<uint8_t> blk(act_block_bytes(a));
  quantize_row_act_ref(a, x, blk.data(), n);
  if (a == ActType::kQ8_0) return f16_to_f32(reinterpret_cast<const BlockQ8_0*>(blk.data())->d);
  return std::fabs(reinterpret_cast<const BlockQ8_K*>(blk.data())->d);
}

// Calls fn(j0, n_act, w) for each activation block of a row: w holds its weights, dequantized.
template <typename Fn>
void for_each_act_block(GgmlType t, const void* w, int64_t n, Fn&& fn) {
  const WeightTypeTraits& tr = weight_traits(t);
  check_whole_blocks(tr, n);
  const int na = act_block_size(tr.act);
  KVPACK_ASSERT(n % na == 0 && na % tr.block == 0, "{} values, {} blocks", n, type_name(t));
  std::vector<float> wf(static_cast<size_t>(na));
  const auto* p = static_cast<const uint8_t*>(w);
  for (int64_t j0 = 0; j0 < n; j0 += na) {
    tr.dequantize(p + j0 / tr.block * tr.block_bytes, wf.data(), nullptr, na);
    fn(j0, na, wf.data());
  }
}

}  // namespace

std::span<const WeightTypeTraits> weight_types() {
  return kTypes;
}

const WeightTypeTraits* find_weight_type(GgmlType t) {
  for (const WeightTypeTraits& tr : kTypes) {
    if (tr.type == t) return &tr;
  }
  return nullptr;
}

const WeightTypeTraits& weight_traits(GgmlType t) {
  const WeightTypeTraits* tr = find_weight_type(t);
  KVPACK_ASSERT(tr != nullptr, "weight type {} is not supported", type_name(t));
  return *tr;
}

std::string supported_weight_type_names() {
  std::string out;
  for (const WeightTypeTraits& tr : kTypes) out += (out.empty() ? "" : ", ") + type_name(tr.type);
  return out;
}

bool is_weight_type(GgmlType t) {
  return find_weight_type(t) != nullptr;
}

int weight_block_size(GgmlType t) {
  return weight_traits(t).block;
}

int weight_block_bytes(GgmlType t) {
  return weight_traits(t).block_bytes;
}

size_t weight_row_bytes(GgmlType t, int64_t n) {
  const WeightTypeTraits& tr = weight_traits(t);
  check_whole_blocks(tr, n);
  return static_cast<size_t>(n / tr.block) * static_cast<size_t>(tr.block_bytes);
}

int act_block_size(ActType a) {
  KVPACK_ASSERT(a != ActType::kF32, "f32 activations have no blocks");
  return a == ActType::kQ8_0 ? kQBlock : kQK;
}

size_t act_block_bytes(ActType a) {
  KVPACK_ASSERT(a != ActType::kF32, "f32 activations have no blocks");
  return a == ActType::kQ8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ8_K);
}

void quantize_row_act_ref(ActType a, const float* x, void* y, int64_t n) {
  if (a == ActType::kQ8_0) {
    quantize_row_q8_0_ref(x, static_cast<BlockQ8_0*>(y), n);
  } else {
    KVPACK_ASSERT(a == ActType::kQ8_K, "f32 activations are not quantized");
    quantize_row_q8_K_ref(x, static_cast<BlockQ8_K*>(y), n);
  }
}

void dequantize_row_act_ref(ActType a, const void* y, float* x, int64_t n) {
  if (a == ActType::kQ8_0) {
    const auto* b = static_cast<const BlockQ8_0*>(y);
    for (int64_t j = 0; j < n; ++j)
      x[j] = b[j / kQBlock].qs[j % kQBlock] * f16_to_f32(b[j / kQBlock].d);
  } else {
    KVPACK_ASSERT(a == ActType::kQ8_K, "f32 activations are not quantized");
    const auto* b = static_cast<const BlockQ8_K*>(y);
    for (int64_t j = 0; j < n; ++j) x[j] = b[j / kQK].qs[j % kQK] * b[j / kQK].d;
  }
}

void quantize_row_ref(GgmlType t, const float* x, void* y, int64_t n) {
  const WeightTypeTraits& tr = weight_traits(t);
  check_whole_blocks(tr, n);
  tr.quantize(x, static_cast<uint8_t*>(y), n);
}

void dequantize_row_ref(GgmlType t, const void* x, float* y, int64_t n) {
  const WeightTypeTraits& tr = weight_traits(t);
  check_whole_blocks(tr, n);
  tr.dequantize(static_cast<const uint8_t*>(x), y, nullptr, n);
}

double vec_dot_f32_ref(GgmlType t, const void* w, const float* x, int64_t n, double* abs_sum) {
  const WeightTypeTraits& tr = weight_traits(t);
  check_whole_blocks(tr, n);
  const auto* p = static_cast<const uint8_t*>(w);
  // One block at a time (exact), so only the double sum rounds.
  std::vector<float> wf(static_cast<size_t>(tr.block));
  double sum = 0.0, asum = 0.0;
  for (int64_t i = 0; i < n; i += tr.block) {
    tr.dequantize(p + i / tr.block * tr.block_bytes, wf.data(), nullptr, tr.block);
    for (int j = 0; j < tr.block; ++j) {
      const double term = static_cast<double>(wf[j]) * static_cast<double>(x[i + j]);
      sum += term;
      asum += std::fabs(term);
    }
  }
  if (abs_sum != nullptr) *abs_sum = asum;
  return sum;
}

double vec_dot_act_ref(GgmlType t, const void* w, const void* xq, int64_t n, double* abs_sum) {
  const WeightTypeTraits& tr = weight_traits(t);
  KVPACK_ASSERT(tr.act != ActType::kF32, "{} has no integer dot product", type_name(t));
  check_whole_blocks(tr, n);
  std::vector<float> x(static_cast<size_t>(n));
  dequantize_row_act_ref(tr.act, xq, x.data(), n);
  const auto* p = static_cast<const uint8_t*>(w);
  std::vector<float> wf(static_cast<size_t>(tr.block)), b(static_cast<size_t>(tr.block), 0.0f);
  double sum = 0.0, asum = 0.0;
  for (int64_t i = 0; i < n; i += tr.block) {
    tr.dequantize(p + i / tr.block * tr.block_bytes, wf.data(), b.data(), tr.block);
    for (int j = 0; j < tr.block; ++j) {
      const double xj = x[static_cast<size_t>(i + j)];
      sum += static_cast<double>(wf[j]) * xj;
      // a = w + b up to w's one rounding, which is far below what this sum bounds.
      const double bj = tr.has_min ? b[j] : 0.0;
      asum += (std::fabs(wf[j] + bj) + std::fabs(bj)) * std::fabs(xj);
    }
  }
  if (abs_sum != nullptr) *abs_sum = asum;
  return sum;
}

double vec_dot_q8_ref(GgmlType t, const void* w, const BlockQ8_0* xq, int64_t n, double* abs_sum) {
  KVPACK_ASSERT(weight_traits(t).act == ActType::kQ8_0, "{} activations are not q8_0",
                type_name(t));
  return vec_dot_act_ref(t, w, xq, n, abs_sum);
}

double q8_activation_error_bound(GgmlType t, const void* w, const float* x, int64_t n) {
  const ActType a = weight_traits(t).act;
  if (a == ActType::kF32) return 0.0;
  double bound = 0.0;
  for_each_act_block(t, w, n, [&](int64_t j0, int na, const float* wf) {
    double wsum = 0.0;
    for (int j = 0; j < na; ++j) wsum += std::fabs(wf[j]);
    bound += act_step_bound(a, x + j0) * wsum;
  });
  return bound;
}

double q8_activation_error_rms(GgmlType t, const void* w, const float* x, int64_t n) {
  const ActType a = weight_traits(t).act;
  if (a == ActType::kF32) return 0.0;
  double var = 0.0;
  for_each_act_block(t, w, n, [&](int64_t j0, int na, const float* wf) {
    double w2 = 0.0;
    for (int j = 0; j < na; ++j) w2 += static_cast<double>(wf[j]) * wf[j];
    const double d = act_step(a, x + j0);
    var += w2 * d * d / 12.0;
  });
  return std::sqrt(var);
}

}  // namespace kvpack::model
