// Benchmark support: several layers' worth of one K/V pair's encoded pages at one context length,
// so a run of decode calls cycles through more memory than the last-level cache holds and
// measures DRAM, not cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "kvpack/cache.h"
#include "kvpack/format.h"

namespace kvpack::attention::bench {

// The attention shape of one layer.
struct Shape {
  int n_q_heads = 32;
  int n_kv_heads = 8;
  int head_dim = 128;  // K and V
  int page_tokens = 32;
};

// One layer's bytes that a decode call streams: every page's K and V blocks plus the f32 tail.
size_t layer_bytes(format::FormatId k, format::FormatId v, const Shape& shape, int64_t context);

class SyntheticLayers {
 public:
  // Enough layers (at least 2) that their pages total >= working_set bytes. Pages hold encoded
  // Gaussian data (a few distinct pages, copied); the last context % page_tokens tokens form the
  // f32 tail. Page ids ascend, as the cache's lowest-id-first allocator gives one sequence on a
  // fresh or compacted pool; `shuffle_pages` scatters them as a fragmented pool would.
  SyntheticLayers(format::FormatId k, format::FormatId v, const Shape& shape, int64_t context,
                  size_t working_set, uint64_t seed, bool shuffle_pages = false);

  int n_layers() const { return static_cast<int>(views_.size()); }
  const cache::LayerView& view(int layer) const { return views_[static_cast<size_t>(layer)]; }
  size_t bytes_per_call() const { return bytes_per_call_; }

 private:
  struct Layer {
    AlignedArray<uint8_t> k_pool, v_pool;
    std::vector<uint32_t> ids;
  };

  std::unique_ptr<format::Codec> k_codec_, v_codec_;
  std::vector<Layer> layers_;
  std::vector<float> k_tail_, v_tail_;  // [head][tail][dim], shared by the layers
  std::vector<cache::LayerView> views_;
  size_t bytes_per_call_ = 0;
};

// The comparison baseline: dequantize a layer's pages into an f16 cache with the formats'
// reference decode(), then attend over that with the f16 kernels. Holds one layer of f16 pages
// (context-sized, the copy kvpack's kernels avoid).
class DequantBaseline {
 public:
  DequantBaseline(const Shape& shape, int64_t context);
  // Rewrites the scratch from `view` (parallel over heads) and returns a view of it.
  const cache::LayerView& dequantize(const cache::LayerView& view, ThreadPool& pool);

 private:
  std::unique_ptr<format::Codec> k_codec_, v_codec_;
  AlignedArray<uint8_t> k_pool_, v_pool_;
  std::vector<uint32_t> ids_;
  cache::LayerView view_;
};

}  // namespace kvpack::attention::bench
