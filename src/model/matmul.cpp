// Dispatch and threading for the matmul kernels of matmul-inl.h.

#include "model/simd_targets.h"  // first: selects the Highway targets

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "base/error.h"
#include "model/matmul-inl.h"

#if HWY_ONCE
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/aligned.h"
#include "base/half.h"
#include "base/simd_target.h"
#include "base/thread_pool.h"
#include "model/matmul.h"
#include "model/matmul_int.h"
#include "model/quant_ref.h"

namespace kvpack::model {

HWY_EXPORT(MatmulRows);
HWY_EXPORT(QuantizeActivations);
HWY_EXPORT(WantsVnniLayout);

namespace {

// Rows per parallel task: a multiple of every tile height, small enough to balance 2..64
// threads on 2048-row matrices.
constexpr int64_t kRowsPerTask = 32;

// A matvec (one token) of the integer kernels streams its rows from memory, and each task a
// thread takes starts it on a region the hardware prefetchers have not seen, while the last tile
// of its previous task prefetched rows that another thread's task holds. So such a matvec is cut
// into a few large tasks per thread instead: AMD Zen 5, 2 threads, 1 GiB matrices, median of 5-6
// alternating runs, GB/s (`kvpack --simd T bench matmul --mib 1024 --tokens 1`): avx512-vnni
// Q4_K 33 -> 40, Q5_K 31.5 -> 40, Q6_K 36 -> 43; avx2 Q4_K 27-30 -> 33-41, Q6_K 25-26 -> 30-38,
// Q8_0 33-35 -> 42-43; whole-model decode (`bench decode`) Q4_K 30-32 -> 32-38, Q6_K 36-40 ->
// 40-46. 2, 4 or 8 tasks per thread measured alike; 4 leaves room to balance a slow thread. The
// float tiles (no software prefetch) keep 32-row tasks (F16 44.5 -> 43.4, F32 57 -> 53 GB/s with
// large ones, 8 alternating runs), and so do batches: their tiles are compute-bound, and a batch
// of 2-3 tokens reads a task's rows once per token, which must stay in cache.
constexpr int64_t kMatvecTasksPerThread = 4;

int64_t matvec_rows_per_task(int64_t rows, int threads) {
  const int64_t per =
      (rows + kMatvecTasksPerThread * threads - 1) / (kMatvecTasksPerThread * threads);
  return std::max(kRowsPerTask, (per + kRowsPerTask - 1) / kRowsPerTask * kRowsPerTask);
}

bool int_dot(GgmlType t, QuantDot dot) {
  return dot == QuantDot::kInt8 && weight_traits(t).act != ActType::kF32;
}

// The portable path where no integer kernel runs (Highway's one-lane SCALAR fallback): each
// token's activations quantized to the type's activation blocks and dequantized again (exactly:
// q * d), so the f32 kernels give the integer path's sums.
struct DequantizedActivations {
  std::vector<float> x;
  std::vector<uint8_t> blocks;

  const float* prepare(const float* in, int64_t n_tokens, int64_t cols, ActType a) {
    x.resize(static_cast<size_t>(n_tokens * cols));
    blocks.resize(static_cast<size_t>(cols / act_block_size(a)) * act_block_bytes(a));
    for (int64_t t = 0; t < n_tokens; ++t) {
      quantize_row_act_ref(a, in + t * cols, blocks.data(), cols);
      dequantize_row_act_ref(a, blocks.data(), x.data() + t * cols, cols);
    }
    return x.data();
  }
};

// Q8_0 and Q4_0 on AVX-512 VNNI keep the 512-bit kernels of matmul-inl.h (two blocks per
// vector); every other integer dot runs the kernels of quant/int_kernels-inl.h.
bool vnni512_kernel(GgmlType t) {
  return (t == GgmlType::Q8_0 || t == GgmlType::Q4_0) && HWY_DYNAMIC_DISPATCH(WantsVnniLayout)();
}

// Per-thread buffer for quantized activations, grown on demand and reused across calls.
struct Q8Scratch {
  AlignedArray<uint8_t> bytes;
  size_t capacity = 0;
  ActivationsQ8 acts;

  const ActivationsQ8& prepare(const float* x, int64_t n_tokens, int64_t cols, GgmlType type) {
    const int64_t nb = round_up(static_cast<size_t>(cols / kQBlock), 2);
    const bool vnni = HWY_DYNAMIC_DISPATCH(WantsVnniLayout)();
    const size_t n_blk = static_cast<size_t>(n_tokens * nb);
    const size_t qs_bytes = round_up(n_blk * kQBlock, kCacheLine);
    const size_t d_bytes = round_up(n_blk * sizeof(float), kCacheLine);
    const size_t lane_bytes = vnni ? round_up(n_blk * 8 * sizeof(float), kCacheLine) : 0;
    const size_t pair_bytes = vnni ? qs_bytes : 0;
    const size_t need = qs_bytes + d_bytes + pair_bytes + 2 * lane_bytes;
    if (need > capacity) {
      bytes = make_aligned<uint8_t>(need);
      capacity = need;
    }
    uint8_t* p = bytes.get();
    acts.n_blocks = nb;
    acts.qs = reinterpret_cast<int8_t*>(p);
    acts.d = reinterpret_cast<float*>(p + qs_bytes);
    p += qs_bytes + d_bytes;
    acts.qs_pairs = vnni ? reinterpret_cast<int8_t*>(p) : nullptr;
    acts.d_lanes = vnni ? reinterpret_cast<float*>(p + pair_bytes) : nullptr;
    acts.bias_lanes = vnni ? reinterpret_cast<int32_t*>(p + pair_bytes + lane_bytes) : nullptr;
    HWY_DYNAMIC_DISPATCH(QuantizeActivations)
    (x, n_tokens, cols, type == GgmlType::Q8_0 ? 128 : 8, acts);
    return acts;
  }
};

void check_operands(const WeightMatrix& w, const float* x, int64_t n_tokens, const float* y) {
  KVPACK_ASSERT(is_weight_type(w.type) && w.data != nullptr && w.rows > 0 && w.cols > 0,
                "matmul: bad weight view '{}'", w.name);
  KVPACK_ASSERT(w.cols % weight_block_size(w.type) == 0, "matmul: '{}' cols {}", w.name, w.cols);
  KVPACK_ASSERT(n_tokens >= 0 && (n_tokens == 0 || (x != nullptr && y != nullptr)),
                "matmul: '{}' with {} tokens", w.name, n_tokens);
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            QuantDot dot) {
  check_operands(w, x, n_tokens, y);
  if (n_tokens == 0) return;
  MatmulJob job;
  job.w = &w;
  job.x = x;
  job.n_tokens = n_tokens;
  job.y = y;
  if (int_dot(w.type, dot) && vnni512_kernel(w.type)) {
    thread_local Q8Scratch scratch;
    job.xq = &scratch.prepare(x, n_tokens, w.cols, w.type);
  } else if (int_dot(w.type, dot) && has_int_kernels()) {
    thread_local IntScratch scratch;
    job.xi = &scratch.prepare(x, n_tokens, w.cols, w.type, pool);
  } else if (int_dot(w.type, dot)) {
    thread_local DequantizedActivations dq;
    job.x = dq.prepare(x, n_tokens, w.cols, weight_traits(w.type).act);
  }
  const bool int_matvec = n_tokens == 1 && (job.xi != nullptr || job.xq != nullptr);
  const int64_t per_task = int_matvec ? matvec_rows_per_task(w.rows, pool.size()) : kRowsPerTask;
  const int64_t n_tasks = (w.rows + per_task - 1) / per_task;
  pool.parallel_for(n_tasks, [&](int64_t task, int) {
    const int64_t r0 = task * per_task;
    const int64_t r1 = std::min(w.rows, r0 + per_task);
    if (job.xi != nullptr) {
      matmul_rows_int(job, r0, r1);
    } else {
      HWY_DYNAMIC_DISPATCH(MatmulRows)(job, r0, r1);
    }
  });
}

void matvec(const WeightMatrix& w, const float* x, float* y, ThreadPool& pool, QuantDot dot) {
  matmul(w, x, 1, y, pool, dot);
}

void matmul_ref(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, QuantDot dot) {
  check_operands(w, x, n_tokens, y);
  const bool int8 = int_dot(w.type, dot);
  const ActType a = weight_traits(w.type).act;
  std::vector<uint8_t> xq(
      int8 ? static_cast<size_t>(w.cols / act_block_size(a)) * act_block_bytes(a) : 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * w.cols;
    if (int8) quantize_row_act_ref(a, xt, xq.data(), w.cols);
    for (int64_t r = 0; r < w.rows; ++r) {
      const double v = int8 ? vec_dot_act_ref(w.type, w.row(r), xq.data(), w.cols)
                            : vec_dot_f32_ref(w.type, w.row(r), xt, w.cols);
      y[t * w.rows + r] = static_cast<float>(v);
    }
  }
}

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  KVPACK_ASSERT(n % kQBlock == 0, "quantize_row_q8_0: n = {}", n);
  thread_local Q8Scratch scratch;
  const ActivationsQ8& a = scratch.prepare(x, 1, n, GgmlType::Q8_0);
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    y[b].d = f32_to_f16(a.d[b]);  // exact: d holds a widened f16
    std::memcpy(y[b].qs, a.qs + b * kQBlock, kQBlock);
  }
}

const char* matmul_target() {
  // kvpack's names ("avx2-novnni"), which tell the two AVX2 kernels apart; Highway's
  // TargetName would not.
  thread_local std::string name;
  name = active_simd_target();
  return name.c_str();
}

void for_each_simd_target(const std::function<void(const char* target)>& fn) {
  struct Restore {
    ~Restore() { force_simd_target("best"); }
  } restore;
  for (const std::string& target : available_simd_targets()) {
    force_simd_target(target);
    fn(target.c_str());
  }
}

}  // namespace kvpack::model
#endif  // HWY_ONCE
