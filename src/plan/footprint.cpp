// K/V bytes per token and per session: the cache's own page arithmetic (cache::PageLayout) fed
// with the format registry's page sizes, so the planner and the cache cannot disagree.
#include <fmt/format.h>

#include "base/error.h"
#include "kvpack/plan.h"

namespace kvpack::plan {

double KvFootprint::bytes_per_token_full() const {
  return static_cast<double>(full_page_bytes) / page_tokens;
}

double KvFootprint::bytes_per_token_sliding() const {
  return static_cast<double>(sliding_page_bytes) / page_tokens;
}

uint64_t KvFootprint::session_bytes(int64_t context) const {
  return layout.sequence_bytes(context, step_chunk);
}

int64_t KvFootprint::max_context(uint64_t available) const {
  return layout.max_tokens(available, step_chunk);
}

KvFootprint kv_footprint(const ModelShape& model, const format::KVPolicy& policy, int page_tokens,
                         int step_chunk) {
  if (page_tokens <= 0) fail("invalid page size {}: expected a positive token count", page_tokens);
  if (step_chunk < 0) fail("invalid step chunk {}: expected >= 0 tokens", step_chunk);
  const int n = model.n_layers();
  policy.validate(n, model.head_dim_k, model.head_dim_v, page_tokens);
  std::vector<cache::LayerPages> layers(static_cast<size_t>(n));
  const auto dk = static_cast<uint64_t>(model.head_dim_k);
  const auto dv = static_cast<uint64_t>(model.head_dim_v);
  for (int l = 0; l < n; ++l) {
    const model::LayerSpec& layer = model.layers[static_cast<size_t>(l)];
    if (layer.kv_heads == 0) continue;  // no K/V: no slot, no staging
    if (layer.window > INT32_MAX) {
      fail("model {}: layer {}'s window of {} tokens is too long", model.name, l, layer.window);
    }
    const format::LayerFormats f = policy.layer(l, n);
    const auto heads = static_cast<uint64_t>(layer.kv_heads);
    cache::LayerPages& lp = layers[static_cast<size_t>(l)];
    lp.k_bytes = heads * format::info(f.k).head_bytes(model.head_dim_k, page_tokens);
    lp.v_bytes = heads * format::info(f.v).head_bytes(model.head_dim_v, page_tokens);
    lp.window = static_cast<int>(layer.window);
    lp.staging_row_bytes = heads * (dk + dv) * sizeof(float);  // the cache's f32 tail rows
  }
  KvFootprint fp;
  fp.page_tokens = page_tokens;
  fp.step_chunk = step_chunk;
  fp.layout = cache::page_layout(layers, page_tokens, /*hp_window=*/0);
  fp.tail_bytes = fp.layout.staging_bytes;
  for (size_t g = 0; g < fp.layout.groups.size(); ++g) {
    if (fp.layout.groups[g].window == 0) {
      fp.full_page_bytes += fp.layout.page_bytes;
    } else {
      fp.sliding_page_bytes += fp.layout.page_bytes;
      fp.sliding_pages = static_cast<int64_t>(fp.layout.peak_pages(g, INT32_MAX, step_chunk));
    }
  }
  return fp;
}

}  // namespace kvpack::plan
