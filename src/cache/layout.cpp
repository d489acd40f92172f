// The page arithmetic: how layers are grouped by attention kind and laid out in a page, and what
// a sequence costs. The cache builds its arena and page tables from it and the planner
// (src/plan/footprint.cpp) its byte figures, so the two cannot disagree (docs/cache.md).
#include <algorithm>
#include <map>

#include "base/error.h"
#include "cache/layout.h"

namespace kvpack::cache {
namespace {

int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Groups of `size` layers per kind, kinds ordered full first, then by window.
std::vector<PageGroup> make_groups(std::span<const LayerPages> layers) {
  std::map<int, std::vector<int>> kinds;  // window -> its layers in order
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].holds_kv()) kinds[layers[l].window].push_back(static_cast<int>(l));
  }
  size_t size = layers.size();
  for (const auto& [window, ls] : kinds) size = std::min(size, ls.size());
  std::vector<PageGroup> groups;
  for (const auto& [window, ls] : kinds) {
    for (size_t at = 0; at < ls.size(); at += size) {
      PageGroup g;
      g.window = window;
      g.layers.assign(ls.begin() + static_cast<std::ptrdiff_t>(at),
                      ls.begin() + static_cast<std::ptrdiff_t>(std::min(ls.size(), at + size)));
      // Largest slices first, so groups of mixed formats line their big slices up.
      std::stable_sort(g.layers.begin(), g.layers.end(), [&](int a, int b) {
        return layers[a].k_bytes + layers[a].v_bytes > layers[b].k_bytes + layers[b].v_bytes;
      });
      groups.push_back(std::move(g));
    }
  }
  return groups;
}

}  // namespace

int64_t PageLayout::window_start(size_t g, int64_t n) const {
  const int64_t w = groups[g].window;
  if (w == 0) return 0;
  return std::max<int64_t>(0, floor_div(n - w + 1, page_tokens));
}

int64_t PageLayout::encoded_pages(int64_t n) const {
  return std::max<int64_t>(0, floor_div(n - hp_window, page_tokens));
}

int64_t PageLayout::first_held(size_t g, int64_t n) const {
  return std::min(window_start(g, n), encoded_pages(n));
}

uint64_t PageLayout::group_slice_bytes(size_t g) const {
  uint64_t bytes = 0;
  for (int l : groups[g].layers) bytes += layer_k_bytes[l] + layer_v_bytes[l];
  return bytes;
}

uint64_t PageLayout::held_pages(size_t g, int64_t n) const {
  return static_cast<uint64_t>(ceil_div(n, page_tokens) - first_held(g, n));
}

uint64_t PageLayout::ring_pages(size_t g, int chunk) const {
  const PageGroup& grp = groups[g];
  if (grp.window == 0 || chunk <= 0) return UINT64_MAX;
  // When a layer encodes a page of the step, the ring slot it reuses must be behind the window
  // of every layer's pending queries (at most two chunks back: a layer appends its next chunk
  // only after attending its previous one) and encoded by every layer (at most one chunk back).
  const int64_t m = chunk;
  const int64_t reach = std::max<int64_t>(2 * m + grp.window - 1 - hp_window, m);
  // ... and the step's pages still held at commit_step must fit too.
  return std::max<uint64_t>(static_cast<uint64_t>(ceil_div(reach, page_tokens)), grp.max_held);
}

uint64_t PageLayout::step_pages(size_t g, int64_t n0, int64_t n1, int chunk) const {
  const uint64_t own = static_cast<uint64_t>(ceil_div(n1, page_tokens) - ceil_div(n0, page_tokens));
  if (groups[g].window == 0) return static_cast<uint64_t>(ceil_div(n1, page_tokens));
  return held_pages(g, n0) + std::min(own, ring_pages(g, chunk));
}

uint64_t PageLayout::peak_pages(size_t g, int64_t n, int chunk) const {
  const PageGroup& grp = groups[g];
  const int64_t P = page_tokens, c = ceil_div(n, P);
  if (grp.window == 0 || chunk <= 0) return static_cast<uint64_t>(c);
  // The max over n0 <= n of step_pages(g, n0, n). Where the ring limits the step (ceil(n0 / P)
  // <= c - ring, i.e. n0 <= x) it is held_pages(n0) + ring, largest at the most held up to x;
  // past x the step keeps its every page, c - first_held(n0), largest at the smallest n0.
  const auto ring = static_cast<int64_t>(ring_pages(g, chunk));
  const int64_t x = (c - ring) * P;
  uint64_t best = 0;
  if (x >= 0) {
    const int64_t last = static_cast<int64_t>(grp.held_upto.size()) - 1;
    best = grp.held_upto[static_cast<size_t>(std::min(x, last))] + static_cast<uint64_t>(ring);
  }
  const int64_t n0 = std::max<int64_t>(0, x + 1);
  if (n0 <= n) best = std::max(best, static_cast<uint64_t>(c - first_held(g, n0)));
  return best;
}

uint64_t PageLayout::sequence_pages(int64_t n, int chunk) const {
  uint64_t pages = 0;
  for (size_t g = 0; g < groups.size(); ++g) pages += peak_pages(g, n, chunk);
  return pages;
}

uint64_t PageLayout::sequence_bytes(int64_t n, int chunk) const {
  return sequence_pages(n, chunk) * page_bytes + staging_bytes;
}

int64_t PageLayout::max_tokens(uint64_t bytes, int chunk) const {
  if (bytes < staging_bytes) return 0;
  const int64_t P = page_tokens;
  bool grows = chunk <= 0;
  for (const PageGroup& g : groups) grows |= g.window == 0;
  int64_t hi = 0;  // pages of context that surely do not fit
  if (grows) {
    hi = static_cast<int64_t>(bytes / page_bytes) + 1;
  } else {  // sliding groups stop growing once a step's ring and the window have filled
    int64_t settle = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      const auto ring = static_cast<int64_t>(ring_pages(g, chunk));
      settle = std::max(settle, static_cast<int64_t>(groups[g].held_upto.size()) + (ring + 2) * P);
    }
    if (sequence_bytes(settle, chunk) <= bytes) return -1;
    hi = ceil_div(settle, P);
  }
  int64_t lo = 0;  // fits
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (sequence_bytes(mid * P, chunk) <= bytes ? lo : hi) = mid;
  }
  return lo * P;
}

PageLayout page_layout(std::span<const LayerPages> layers, int page_tokens, int hp_window) {
  if (page_tokens <= 0) fail("invalid page size {}: expected a positive token count", page_tokens);
  if (hp_window < 0) fail("invalid high-precision window {}: expected >= 0", hp_window);
  PageLayout out;
  out.page_tokens = page_tokens;
  out.hp_window = hp_window;
  const int64_t tail_cap = hp_window == 0 ? page_tokens : 2 * int64_t{hp_window} + page_tokens;
  bool any = false;
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].window < 0) fail("layer {}: window {} must be >= 0", l, layers[l].window);
    any |= layers[l].holds_kv();
    out.layer_k_bytes.push_back(layers[l].k_bytes);
    out.layer_v_bytes.push_back(layers[l].v_bytes);
    out.staging_bytes += layers[l].staging_row_bytes * static_cast<uint64_t>(tail_cap);
  }
  if (!any) fail("page layout: no layer holds K/V");
  out.groups = make_groups(layers);
  out.layer_group.assign(layers.size(), -1);
  out.layer_slot.assign(layers.size(), -1);
  for (size_t g = 0; g < out.groups.size(); ++g) {
    const std::vector<int>& ls = out.groups[g].layers;
    for (size_t s = 0; s < ls.size(); ++s) {
      out.layer_group[ls[s]] = static_cast<int>(g);
      out.layer_slot[ls[s]] = static_cast<int>(s);
      if (s >= out.k_slot_bytes.size()) {
        out.k_slot_bytes.resize(s + 1, 0);
        out.v_slot_bytes.resize(s + 1, 0);
      }
      out.k_slot_bytes[s] = std::max(out.k_slot_bytes[s], layers[ls[s]].k_bytes);
      out.v_slot_bytes[s] = std::max(out.v_slot_bytes[s], layers[ls[s]].v_bytes);
    }
  }
  for (size_t s = 0; s < out.k_slot_bytes.size(); ++s) {
    out.page_bytes += out.k_slot_bytes[s] + out.v_slot_bytes[s];
  }
  // The most pages a sliding group holds between steps at lengths up to n: held_pages is
  // periodic in n (period P) once n passes the window and the high-precision window, so the
  // table ends one period past them.
  for (size_t g = 0; g < out.groups.size(); ++g) {
    PageGroup& grp = out.groups[g];
    if (grp.window == 0) continue;
    const int64_t settle = std::max<int64_t>(grp.window, hp_window) + 2 * int64_t{page_tokens};
    uint64_t most = 0;
    for (int64_t n = 0; n <= settle; ++n) {
      most = std::max(most, out.held_pages(g, n));
      grp.held_upto.push_back(most);
    }
    grp.max_held = most;
  }
  return out;
}

void validate_config(const CacheConfig& c) {
  if (c.n_layers < 1 || c.n_kv_heads < 1) {
    fail("kv cache: needs at least one layer and one KV head (got {} layers, {} heads)", c.n_layers,
         c.n_kv_heads);
  }
  if (c.head_dim_k < 1 || c.head_dim_v < 1) {
    fail("kv cache: head dims must be positive (got K {}, V {})", c.head_dim_k, c.head_dim_v);
  }
  if (c.page_tokens < 16 || c.page_tokens > 256) {
    fail("kv cache: page_tokens {} is outside 16..256", c.page_tokens);
  }
  if ((c.budget_bytes == 0) == (c.n_pages == 0)) {
    fail("kv cache: give exactly one of a byte budget and a page count (got {} bytes, {} pages)",
         c.budget_bytes, c.n_pages);
  }
  if (c.hp_window < 0 || c.hp_window > (1 << 20)) {
    fail("kv cache: high-precision window {} is outside 0..1048576 tokens", c.hp_window);
  }
  if (!c.layer_window.empty() && c.layer_window.size() != static_cast<size_t>(c.n_layers)) {
    fail("kv cache: {} layer windows for {} layers", c.layer_window.size(), c.n_layers);
  }
  for (size_t l = 0; l < c.layer_window.size(); ++l) {
    if (c.layer_window[l] < 0 || c.layer_window[l] > kMaxWindow) {
      fail("kv cache: layer {}'s window {} is outside 0..{} tokens", l, c.layer_window[l],
           kMaxWindow);
    }
  }
  if (c.max_sequences < 1 || c.max_sequences > (1 << 24)) {
    fail("kv cache: max_sequences {} is outside 1..16777216", c.max_sequences);
  }
  c.policy.validate(c.n_layers, c.head_dim_k, c.head_dim_v, c.page_tokens);
}

PageLayout page_layout(const CacheConfig& c) {
  CacheConfig checked = c;
  if (checked.budget_bytes == 0 && checked.n_pages == 0) checked.n_pages = 1;  // not sized yet
  validate_config(checked);
  std::vector<LayerPages> layers(static_cast<size_t>(c.n_layers));
  const auto heads = static_cast<uint64_t>(c.n_kv_heads);
  for (int l = 0; l < c.n_layers; ++l) {
    const format::LayerFormats f = c.policy.layer(l, c.n_layers);
    LayerPages& lp = layers[static_cast<size_t>(l)];
    lp.k_bytes = heads * format::info(f.k).head_bytes(c.head_dim_k, c.page_tokens);
    lp.v_bytes = heads * format::info(f.v).head_bytes(c.head_dim_v, c.page_tokens);
    lp.window = c.layer_window.empty() ? 0 : c.layer_window[static_cast<size_t>(l)];
    lp.staging_row_bytes = heads * static_cast<uint64_t>(c.head_dim_k + c.head_dim_v) * 4;
  }
  return page_layout(layers, c.page_tokens, c.hp_window);
}

uint32_t sequence_pages(const CacheConfig& config, int64_t tokens, int chunk) {
  if (tokens < 0) fail("kv cache: a sequence of {} tokens", tokens);
  const uint64_t pages = page_layout(config).sequence_pages(tokens, chunk);
  if (pages >= UINT32_MAX) fail("kv cache: {} tokens need {} pages, too many", tokens, pages);
  return static_cast<uint32_t>(std::max<uint64_t>(pages, 1));
}

}  // namespace kvpack::cache
