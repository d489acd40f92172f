// K/V bytes per token and per session, from the format registry's page sizes.
#include <fmt/format.h>

#include "base/error.h"
#include "kvpack/plan.h"

namespace kvpack::plan {
namespace {

// The cache keeps each sequence's newest (< one page of) tokens unencoded in f32 per layer
// (cache::LayerView's tail), so a session carries one f32 page of K and V per KV layer.
constexpr uint64_t kTailBytesPerValue = 4;

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

double KvFootprint::bytes_per_token_full() const {
  return static_cast<double>(full_page_bytes) / page_tokens;
}

double KvFootprint::bytes_per_token_sliding() const {
  return static_cast<double>(sliding_page_bytes) / page_tokens;
}

uint64_t KvFootprint::session_bytes(int64_t context) const {
  const auto pages = static_cast<uint64_t>(context / page_tokens);
  const uint64_t sliding = std::min<uint64_t>(pages, static_cast<uint64_t>(sliding_pages));
  return full_page_bytes * pages + sliding_page_bytes * sliding + tail_bytes;
}

int64_t KvFootprint::max_context(uint64_t available) const {
  if (available < tail_bytes) return 0;
  uint64_t room = available - tail_bytes;
  const auto window_pages = static_cast<uint64_t>(sliding_pages);
  // While sliding layers still grow, every page costs both; after the window only full layers.
  const uint64_t both = full_page_bytes + sliding_page_bytes;
  uint64_t pages = both == 0 ? window_pages : std::min(room / both, window_pages);
  if (pages == window_pages) {
    room -= pages * both;
    if (full_page_bytes == 0) return -1;  // every KV layer slides: any context fits
    pages += room / full_page_bytes;
  }
  return static_cast<int64_t>(pages) * page_tokens;
}

KvFootprint kv_footprint(const ModelShape& model, const format::KVPolicy& policy, int page_tokens) {
  if (page_tokens <= 0) fail("invalid page size {}: expected a positive token count", page_tokens);
  const int n = model.n_layers();
  policy.validate(n, model.head_dim_k, model.head_dim_v, page_tokens);
  KvFootprint fp;
  fp.page_tokens = page_tokens;
  const auto dk = static_cast<uint64_t>(model.head_dim_k);
  const auto dv = static_cast<uint64_t>(model.head_dim_v);
  for (int l = 0; l < n; ++l) {
    const model::LayerSpec& layer = model.layers[static_cast<size_t>(l)];
    if (layer.kv_heads == 0) continue;
    const format::LayerFormats f = policy.layer(l, n);
    const auto heads = static_cast<uint64_t>(layer.kv_heads);
    const uint64_t page = heads * (format::info(f.k).head_bytes(model.head_dim_k, page_tokens) +
                                   format::info(f.v).head_bytes(model.head_dim_v, page_tokens));
    (layer.sliding() ? fp.sliding_page_bytes : fp.full_page_bytes) += page;
    fp.tail_bytes += heads * (dk + dv) * static_cast<uint64_t>(page_tokens) * kTailBytesPerValue;
  }
  if (model.sliding_layers() > 0) {
    fp.sliding_pages = static_cast<int64_t>(
        ceil_div(static_cast<uint64_t>(model.window()), static_cast<uint64_t>(page_tokens)));
  }
  return fp;
}

}  // namespace kvpack::plan
