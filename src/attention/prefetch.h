// Internal: software prefetch for the page walk. A work item reads, per chunk of pages, each
// page's K range (its heads' blocks, contiguous in the slice) and then each page's V range. The
// hardware prefetchers alone leave decode 1.6x (f16) to 2.5x (q8) slower even when the pages are
// in ascending order (measured on the 2-core Zen 5, 1 thread, CPU time), so a cursor walks the
// same range sequence kPrefetchDistance bytes ahead and the kernels advance it by the bytes they
// consume (4 KiB, 16 KiB and 32 KiB distances measured no better than 8 KiB). SIMD kernels take
// the next lines' addresses up front (take_lines) and issue them from their inner loop through a
// LineSchedule, so the loop holds no call that would spill its accumulators.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kvpack/cache.h"

namespace kvpack::attention::detail {

// Bytes the prefetch cursor runs ahead of the reads (FACTS.md section 5: about 8 KiB).
inline constexpr size_t kPrefetchDistance = 8192;
inline constexpr size_t kLineBytes = 64;

class Prefetcher {
 public:
  // A disabled prefetcher: advance() does nothing.
  Prefetcher() = default;

  // The work item reads, per chunk of `chunk_pages` pages in [page_begin, page_end), the K blocks
  // of KV heads [h0, h0 + n_heads) of the chunk's pages (page by page) and then their V blocks
  // (likewise). Issues the first kPrefetchDistance bytes.
  Prefetcher(const cache::LayerView& view, int h0, int n_heads, size_t page_begin, size_t page_end,
             size_t chunk_pages);

  // The caller has consumed `bytes` more of the sequence: keep the cursor kPrefetchDistance
  // ahead (prefetches now).
  void advance(size_t bytes) {
    if (!enabled_) return;
    budget_ += bytes;
    while (budget_ >= kLineBytes) {
      budget_ -= kLineBytes;
      line();
    }
  }

  // Instead of advance(bytes): the addresses of the lines advance(bytes) would prefetch (at most
  // `max`), for the caller to issue; returns how many. 0 when disabled or at the end.
  // Takes whole runs of the current block at a time, in locals: the per-line loop over the
  // members (which `out` may alias) cost about a tenth of a 4-bit kernel's time.
  int take_lines(size_t bytes, const uint8_t** out, int max) {
    if (!enabled_) return 0;
    size_t budget = budget_ + bytes;
    int n = 0;
    while (budget >= kLineBytes && n < max) {
      if (cur_ >= end_ && !next_block()) {
        budget -= kLineBytes;
        break;
      }
      const uint8_t* cur = cur_;
      const size_t left = (static_cast<size_t>(end_ - cur) + kLineBytes - 1) / kLineBytes;
      const size_t k = std::min({budget / kLineBytes, left, static_cast<size_t>(max - n)});
      for (size_t i = 0; i < k; ++i) out[n + static_cast<int>(i)] = cur + i * kLineBytes;
      n += static_cast<int>(k);
      cur_ = cur + k * kLineBytes;
      budget -= k * kLineBytes;
    }
    budget_ = budget;
    return n;
  }

 private:
  void line() {
    if (cur_ >= end_ && !next_block()) return;
    __builtin_prefetch(cur_, 0, 3);
    cur_ += kLineBytes;
  }
  bool next_block();

  const cache::LayerView* view_ = nullptr;
  int h0_ = 0;
  int n_heads_ = 1;
  size_t page_end_ = 0;
  size_t chunk_pages_ = 1;
  size_t chunk_begin_ = 0;  // first page of the chunk the cursor is in
  size_t index_ = 0;        // position in the chunk's block list: K pages, then V pages
  const uint8_t* cur_ = nullptr;
  const uint8_t* end_ = nullptr;
  size_t budget_ = 0;
  bool enabled_ = false;
};

// Spreads n prefetches evenly over `iters` loop iterations: call step() once per iteration.
class LineSchedule {
 public:
  LineSchedule(const uint8_t* const* lines, int n, int iters)
      : lines_(lines), n_(n), iters_(iters) {}
  void step() {
    acc_ += n_;
    while (acc_ >= iters_) {
      acc_ -= iters_;
      __builtin_prefetch(lines_[next_++], 0, 3);
    }
  }

 private:
  const uint8_t* const* lines_;
  int n_;
  int iters_;
  int next_ = 0;
  int acc_ = 0;
};

}  // namespace kvpack::attention::detail
