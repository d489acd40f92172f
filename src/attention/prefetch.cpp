#include "attention/prefetch.h"

#include <algorithm>

namespace kvpack::attention::detail {

Prefetcher::Prefetcher(const cache::LayerView& view, int h0, int n_heads, size_t page_begin,
                       size_t page_end, size_t chunk_pages)
    : view_(&view),
      h0_(h0),
      n_heads_(n_heads),
      page_end_(page_end),
      chunk_pages_(std::max<size_t>(1, chunk_pages)),
      chunk_begin_(page_begin),
      enabled_(page_begin < page_end) {
  if (!enabled_) return;
  index_ = static_cast<size_t>(-1);  // next_block() moves to index 0
  for (size_t i = 0; i < kPrefetchDistance / kLineBytes; ++i) line();
}

bool Prefetcher::next_block() {
  const size_t n = std::min(chunk_pages_, page_end_ - chunk_begin_);
  const size_t heads = static_cast<size_t>(n_heads_);
  if (++index_ >= 2 * n) {
    chunk_begin_ += n;
    index_ = 0;
    if (chunk_begin_ >= page_end_) {
      enabled_ = false;
      return false;
    }
  }
  const size_t m = std::min(chunk_pages_, page_end_ - chunk_begin_);
  const bool keys = index_ < m;  // K pages, then V pages, each page's heads as one range
  const size_t page = chunk_begin_ + (keys ? index_ : index_ - m);
  const format::Codec& codec = keys ? *view_->k_codec : *view_->v_codec;
  cur_ = keys ? view_->k_block(page, h0_) : view_->v_block(page, h0_);
  end_ = cur_ + codec.head_bytes() * heads;
  return true;
}

}  // namespace kvpack::attention::detail
