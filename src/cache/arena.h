// The memory every page lives in: one anonymous mapping reserved up front and split into a K pool
// and a V pool per layer, each [n_pages][slice bytes of that layer's codec]. A page id indexes
// every pool, so one id is valid across all layers while each layer keeps its own slice size.
//
//   mapping: [ L0 K pool | L0 V pool | L1 K pool | ... ]   each pool 4 KiB aligned
//   L0 K pool: [ page 0 slice | page 1 slice | ... | page n-1 slice ]
//
// Layer-major pools keep one layer's pages together, so after compaction a sequence's pages for
// a layer are contiguous. Memory is committed by the OS on first touch; release() hands the
// pages at and above a given id back with madvise(MADV_DONTNEED) (the reservation stays).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvpack::cache {

class Arena {
 public:
  // slice_bytes: [n_layers][2] (K, V) bytes of one page slice. Throws Error if the mapping fails.
  Arena(const std::vector<size_t>& k_slice_bytes, const std::vector<size_t>& v_slice_bytes,
        uint32_t n_pages);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  uint32_t n_pages() const { return n_pages_; }
  // Bytes of one page across all layers, K and V (the unit of the budget).
  size_t page_bytes() const { return page_bytes_; }
  size_t mapped_bytes() const { return mapped_bytes_; }

  uint8_t* k_pool(int layer) const { return base_ + pools_[2 * layer].offset; }
  uint8_t* v_pool(int layer) const { return base_ + pools_[2 * layer + 1].offset; }
  size_t k_stride(int layer) const { return pools_[2 * layer].stride; }
  size_t v_stride(int layer) const { return pools_[2 * layer + 1].stride; }

  // Copies page `from`'s slices to page `to` in every pool (the two must differ).
  void copy_page(uint32_t from, uint32_t to);
  // Returns the memory of pages [first, n_pages) in every pool to the OS; their bytes read as
  // zero afterwards. Only whole OS pages entirely inside the range are released.
  void release(uint32_t first);

 private:
  struct Pool {
    size_t offset = 0;  // from base_, 4 KiB aligned
    size_t stride = 0;  // slice bytes
  };
  std::vector<Pool> pools_;  // [n_layers * 2]: K, V per layer
  uint8_t* base_ = nullptr;
  uint32_t n_pages_ = 0;
  size_t page_bytes_ = 0;
  size_t mapped_bytes_ = 0;
  size_t os_page_ = 4096;
};

}  // namespace kvpack::cache
