// What matmul.cpp hands to the per-target kernels of matmul-inl.h (internal to src/model).
#pragma once

#include <algorithm>
#include <cstdint>

#include "model/quant_ref.h"
#include "model/weights.h"

namespace kvpack::model {

// Tokens' activations quantized to q8_0 for the integer kernels. Per token, n_blocks counts the
// 32-value blocks rounded up to an even number (the VNNI kernel reads blocks in pairs); padding
// blocks are zero. Quantization is ggml's quantize_row_q8_0_ref, so qs and d are its bytes.
struct ActivationsQ8 {
  int64_t n_blocks = 0;
  int8_t* qs = nullptr;  // [n_tokens][n_blocks * 32]
  float* d = nullptr;    // [n_tokens][n_blocks]   f16 scale, widened
  // VNNI layout (AVX-512 VNNI target only): blocks in pairs with their 4-value groups
  // interleaved, int32 lane 2k holding group k of the even block and lane 2k+1 group k of the
  // odd one, so one 512-bit vector holds two blocks and a broadcast f16 scale pair matches it.
  int8_t* qs_pairs = nullptr;     // [n_tokens][n_blocks / 2][64]
  float* d_lanes = nullptr;       // [n_tokens][n_blocks / 2][16]  scale of each lane's block
  int32_t* bias_lanes = nullptr;  // [n_tokens][n_blocks / 2][16]  -offset * sum of its 4 quants
};

// Tokens' activations quantized for the integer kernels of quant/int_kernels-inl.h, in value
// order: q8_0 or q8_K quants (the weight type's ActType) and what the kernels derive from them
// once per call rather than once per row.
struct IntActivations {
  ActType type = ActType::kQ8_0;
  int64_t cols = 0;          // values per token
  int8_t* qs = nullptr;      // [n_tokens][cols]
  float* d32 = nullptr;      // [n_tokens][cols / 32]  scale of each 32 values' block (q8_K: its
                             //                        super-block's; NaN for a non-finite block)
  int16_t* sum16 = nullptr;  // [n_tokens][cols / 16]  sums of 16 quants (q8_K's bsums)
  int16_t* sum32 = nullptr;  // [n_tokens][cols / 32]  sums of 32 quants (q8_K)
  int offset = 0;            // what the weights carry above their value in the kernel (bias4)
  int32_t* bias4 = nullptr;  // [n_tokens][cols / 4]   -offset * sum of 4 quants (offset != 0)
  float* xs4 = nullptr;      // [n_tokens][cols / 4]   d32 * sum of 4 quants (types with a min)
};

struct MatmulJob {
  const WeightMatrix* w = nullptr;
  const float* x = nullptr;            // [n_tokens][w->cols]
  const ActivationsQ8* xq = nullptr;   // Q8_0/Q4_0 integer dots on AVX-512 VNNI (matmul-inl.h)
  const IntActivations* xi = nullptr;  // the other integer dots (quant/int_kernels-inl.h)
  int64_t n_tokens = 0;
  float* y = nullptr;  // [n_tokens][w->rows]
};

// hwy::Prefetch (and __builtin_prefetch) in a counted loop of nothing else: GCC 12 deletes the
// loop as empty, so on x86 the instruction is asm volatile.
inline void PrefetchLine(const uint8_t* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*p));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

// The bytes a prefetch step asks for: [first, first + size) (size 0: none).
struct PrefetchRange {
  const uint8_t* first;
  size_t size;
};

// Asks for every cache line of r.
inline void PrefetchLines(PrefetchRange r) {
  for (size_t k = 0; k < r.size; k += 64) PrefetchLine(r.first + k);
}

// A matvec tile of R rows (the 32-value types' but Q8_0's, quant/int_kernels-inl.h) reads them
// side by side, a few KiB of each: streams too short for the hardware prefetchers to follow (Zen
// 5, one thread, 1 GiB of Q6_K in such tiles: 9 GB/s, against 35 GB/s for one sequential read).
// The rows are contiguous, so the next tile's rows are the bytes right after this tile's; each of
// the tile's `steps` steps asks for its share of them, and the next tile finds its rows in cache
// (the same Q6_K: 18-19 GB/s). Prefill tiles (several tokens) are compute-bound and pass rows =
// 0, which prefetches nothing.
class NextTilePrefetch {
 public:
  // Tile rows [r0, r0 + rows) of w, walked in `steps` steps.
  NextTilePrefetch(const WeightMatrix& w, int64_t r0, int rows, int64_t steps) {
    const int64_t r_next = r0 + rows;
    if (rows <= 0 || r_next >= w.rows || steps <= 0) return;
    const int64_t bytes =
        std::min<int64_t>(rows, w.rows - r_next) * static_cast<int64_t>(w.row_bytes);
    next_ = w.row(r_next);
    bytes_ = static_cast<size_t>(bytes);
    share_ = static_cast<size_t>((bytes + steps - 1) / steps);
  }
  // The bytes step s asks for.
  PrefetchRange range(int64_t s) const {
    const size_t begin = static_cast<size_t>(s) * share_;
    if (begin >= bytes_) return {next_, 0};
    return {next_ + begin, std::min(share_, bytes_ - begin)};
  }
  // Step s of the tile.
  void step(int64_t s) const { PrefetchLines(range(s)); }

 private:
  const uint8_t* next_ = nullptr;
  size_t bytes_ = 0;
  size_t share_ = 0;
};

// A matvec that reads its rows one after another (the super-block types' and Q8_0's, and the
// 512-bit VNNI Q8_0 / Q4_0 tile) is one sequential stream, since rows are contiguous: each step
// asks for the bytes kAhead past the ones it reads, up to the matrix's end. 3-9 KiB ahead
// measured alike (Zen 5, 2 threads, 1 GiB of Q4_K / Q5_K / Q6_K, avx512-vnni: 43-53 GB/s, noise
// larger than the differences); without it, 31-37.
class StreamPrefetch {
 public:
  static constexpr size_t kAhead = 4608;
  explicit StreamPrefetch(const WeightMatrix& w) : end_(w.row(w.rows - 1) + w.row_bytes) {}
  // The bytes a step reading [at, at + size) asks for.
  PrefetchRange range(const uint8_t* at, size_t size) const {
    const uint8_t* first = at + kAhead;
    if (first >= end_) return {end_, 0};
    return {first, std::min(size, static_cast<size_t>(end_ - first))};
  }
  void step(const uint8_t* at, size_t size) const { PrefetchLines(range(at, size)); }

 private:
  const uint8_t* end_;
};

}  // namespace kvpack::model
