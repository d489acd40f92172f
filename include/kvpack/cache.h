// The paged KV cache (src/cache). This header starts with the read-only view attention consumes;
// the cache itself (arena, page tables, prefix index, eviction, compaction) builds views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kvpack/format.h"

namespace kvpack::cache {

// One sequence at one layer, as attention reads it: the encoded full pages in token order, then
// the unencoded tail (the partly filled last page plus any high-precision window), f32.
//
//   tokens: [ page_ids[0] | page_ids[1] | ... | page_ids[P-1] | tail (tail_tokens) ]
//            <------------ P * page_tokens, encoded ----------> <--- f32, as appended --->
//
// Page p's K slice starts at k_pages + page_ids[p] * k_page_stride and holds n_kv_heads blocks
// of k_codec->head_bytes(), head h at offset h * head_bytes(); V likewise.
struct LayerView {
  const format::Codec* k_codec = nullptr;
  const format::Codec* v_codec = nullptr;
  const uint8_t* k_pages = nullptr;
  const uint8_t* v_pages = nullptr;
  size_t k_page_stride = 0;  // bytes between consecutive page ids in this layer's K pool
  size_t v_page_stride = 0;
  std::span<const uint32_t> page_ids;

  // Tail token t of head h: K at k_tail + (h * tail_head_stride + t) * head_dim_k, V likewise
  // with head_dim_v. tail_head_stride is in tokens (the tail's capacity per head).
  const float* k_tail = nullptr;
  const float* v_tail = nullptr;
  int tail_tokens = 0;
  size_t tail_head_stride = 0;

  int n_kv_heads = 0;
  int head_dim_k = 0;
  int head_dim_v = 0;
  int page_tokens = 0;

  int64_t encoded_tokens() const { return static_cast<int64_t>(page_ids.size()) * page_tokens; }
  int64_t n_tokens() const { return encoded_tokens() + tail_tokens; }
  const uint8_t* k_block(size_t page, int head) const {
    return k_pages + page_ids[page] * k_page_stride + head * k_codec->head_bytes();
  }
  const uint8_t* v_block(size_t page, int head) const {
    return v_pages + page_ids[page] * v_page_stride + head * v_codec->head_bytes();
  }
  const float* k_tail_row(int head, int t) const {
    return k_tail + (head * tail_head_stride + static_cast<size_t>(t)) * head_dim_k;
  }
  const float* v_tail_row(int head, int t) const {
    return v_tail + (head * tail_head_stride + static_cast<size_t>(t)) * head_dim_v;
  }
};

}  // namespace kvpack::cache
