// The write path: staging appended rows in f32, encoding each page once it is full and outside
// the high-precision window, registering complete pages for prefix reuse, and the read-only
// view attention takes.
//
// One layer's staging, per head: rows [start, start + tail) hold tokens [E*P, n) of the layer,
// E = encoded pages, P = page_tokens, W = hp_window, capacity C = tail_cap:
//
//   rows: [ ...dropped... | page E (P rows) | ... | newest | free ... ]
//          0              start                            start+tail  C
//
// Page E is encoded when tail >= W + P (its tokens all lie outside the window); start then moves
// past it. When the rows reach C, the tail (< W + P rows) moves back to row 0; C = 2W + P makes
// that one copy per W/P + 1 pages (no copy at all for W = 0).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/timer.h"
#include "cache/cache_state.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {
namespace {

// Throws Error naming the first non-finite value of x: [n][heads][d].
void check_finite(const float* x, int n, int heads, int d, const char* role, SeqId id, int layer) {
  const size_t count = static_cast<size_t>(n) * heads * d;
  // All exponent bits set means Inf or NaN; the integer form vectorizes (std::isfinite does not).
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (bad == 0) return;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(x[i])) {
      const size_t row = i / d;
      fail(
          "kv cache: non-finite {} value {} in append to sequence {}, layer {} (token {}, "
          "head {}, dim {})",
          role, x[i], id, layer, row / heads, row % heads, i % d);
    }
  }
}

uint64_t elapsed_ns(double since) {
  return static_cast<uint64_t>((now_seconds() - since) * 1e9);
}

}  // namespace

float* Cache::State::k_stage(Staging& st, int layer) const {
  const size_t per_layer =
      static_cast<size_t>(config.n_kv_heads) * tail_cap * (config.head_dim_k + config.head_dim_v);
  return st.data.get() + layer * per_layer;
}

float* Cache::State::v_stage(Staging& st, int layer) const {
  return k_stage(st, layer) + static_cast<size_t>(config.n_kv_heads) * tail_cap * config.head_dim_k;
}

void Cache::State::register_complete_pages(Sequence& q) {
  const size_t P = static_cast<size_t>(page_tokens());
  uint32_t most = 0;
  for (size_t g = 0; g < n_groups(); ++g) most = std::max(most, group_encoded(q, g));
  while (q.keys.size() < most) {  // the chain runs through every page, held or released
    const size_t p = q.keys.size();
    const uint64_t parent = p == 0 ? 0 : q.keys[p - 1];
    // Capacity reserved by add_tokens: does not throw.
    q.keys.push_back(
        page_key(q.salt, parent, std::span<const int32_t>(q.tokens).subspan(p * P, P)));
  }
  for (size_t g = 0; g < n_groups(); ++g) {
    GroupTable& t = q.groups[g];
    for (const uint32_t complete = group_encoded(q, g); t.registered < complete; ++t.registered) {
      const uint32_t id = t.pages[t.registered];
      // false: an equal page is cached already; keep ours private.
      if (id != kNoPage) pool->set_hash(id, group_key(q.keys[t.registered], g));
    }
  }
}

namespace {

// Moves one layer's staged rows [start, start + tail) of every head back to row 0.
void rewind(float* stage, int heads, int cap, int d, int32_t start, int64_t tail) {
  for (int h = 0; h < heads; ++h) {
    float* base = stage + static_cast<size_t>(h) * cap * d;
    std::memmove(base, base + static_cast<size_t>(start) * d,
                 static_cast<size_t>(tail) * d * sizeof(float));
  }
}

// Copies rows x: [n][heads][d] to staging rows [row, row + n) of every head.
void stage_rows(float* stage, int heads, int cap, int d, int64_t row, const float* x, int n) {
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < heads; ++h) {
      std::memcpy(stage + (static_cast<size_t>(h) * cap + row + t) * d,
                  x + (static_cast<size_t>(t) * heads + h) * d, static_cast<size_t>(d) * 4);
    }
  }
}

}  // namespace

void Cache::append(SeqId id, int layer, const float* k, const float* v, int n) {
  const double t0 = now_seconds();
  State& s = *s_;
  std::shared_lock world(s.world);
  Sequence& q = s.seq(id);
  if (layer < 0 || layer >= s.config.n_layers) {
    fail("kv cache: layer {} is outside 0..{}", layer, s.config.n_layers - 1);
  }
  LayerCursor& c = q.layers[layer];
  if (n < 1 || k == nullptr || v == nullptr || c.n + n > static_cast<int64_t>(q.tokens.size())) {
    fail(
        "kv cache: append of {} tokens to sequence {}, layer {}: the layer has {} of the {} "
        "tokens added (add_tokens first)",
        n, id, layer, c.n, q.tokens.size());
  }
  const int H = s.config.n_kv_heads, dk = s.config.head_dim_k, dv = s.config.head_dim_v;
  check_finite(k, n, H, dk, "K", id, layer);
  check_finite(v, n, H, dv, "V", id, layer);
  KVPACK_DASSERT(q.staging.use_count() == 1, "append into shared staging (sequence {})", id);

  const int P = s.page_tokens(), W = s.config.hp_window, C = s.tail_cap;
  const size_t g = s.group_of(layer);
  if (q.step && q.step->groups[g].ring) {  // the pages this append encodes need their ids first
    if (n > q.step->chunk) {
      fail(
          "kv cache: append of {} tokens to sequence {}, layer {} is longer than its step's chunk "
          "of {} tokens",
          n, id, layer, q.step->chunk);
    }
    const int64_t encodes = std::max<int64_t>(c.encoded, (c.n + n - W) / P);
    std::lock_guard lock(s.pool_mutex);
    s.ring_take(q, g, static_cast<size_t>(encodes), layer, c.n);
  }
  c.attend_from = c.n;
  float* ks = s.k_stage(*q.staging, layer);
  float* vs = s.v_stage(*q.staging, layer);
  const uint32_t encoded_before = c.encoded;
  for (int done = 0; done < n;) {
    int64_t tail = c.n - static_cast<int64_t>(c.encoded) * P;
    if (c.start + tail == C) {  // the rows reached the end: tail < W + P < C rows move back
      rewind(ks, H, C, dk, c.start, tail);
      rewind(vs, H, C, dv, c.start, tail);
      c.start = 0;
    }
    const int64_t chunk = std::min<int64_t>({n - done, C - c.start - tail, W + P - tail});
    stage_rows(ks, H, C, dk, c.start + tail, k + static_cast<size_t>(done) * H * dk,
               static_cast<int>(chunk));
    stage_rows(vs, H, C, dv, c.start + tail, v + static_cast<size_t>(done) * H * dv,
               static_cast<int>(chunk));
    c.n += chunk;
    done += static_cast<int>(chunk);
    if (c.n - W >= static_cast<int64_t>(c.encoded + 1) * P) {
      s.encode_page(q, layer, ks, vs);
      tail = c.n - static_cast<int64_t>(c.encoded) * P;
      c.start = tail == 0 ? 0 : c.start + P;
    }
  }
  if (c.encoded != encoded_before && !q.step) {  // a step's pages are hashed at commit_step
    std::lock_guard lock(s.pool_mutex);
    s.register_complete_pages(q);
  }
  s.appended_tokens.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  s.append_ns.fetch_add(elapsed_ns(t0), std::memory_order_relaxed);
}

void Cache::State::encode_page(Sequence& q, int layer, const float* ks, const float* vs) {
  const double t0 = now_seconds();
  LayerCursor& c = q.layers[layer];
  const uint32_t page = q.groups[group_of(layer)].pages[c.encoded];
  KVPACK_DASSERT(page != kNoPage && pool->refcount(page) == 1 && !pool->hashed(page),
                 "encoding shared or missing page {}", page);
  const format::Codec& kc = *k_codecs[layer];
  const format::Codec& vc = *v_codecs[layer];
  uint8_t* ks_page = k_slice(layer, page);
  uint8_t* vs_page = v_slice(layer, page);
  const int P = page_tokens();
  for (int h = 0; h < config.n_kv_heads; ++h) {
    const size_t row = static_cast<size_t>(h) * tail_cap + c.start;  // [P][d] from here
    kc.encode(h, ks + row * config.head_dim_k, P, ks_page + h * kc.head_bytes());
    vc.encode(h, vs + row * config.head_dim_v, P, vs_page + h * vc.head_bytes());
  }
  ++c.encoded;
  encoded_pages.fetch_add(1, std::memory_order_relaxed);
  encode_ns.fetch_add(elapsed_ns(t0), std::memory_order_relaxed);
}

LayerView Cache::view(SeqId id, int layer) const {
  const State& s = *s_;
  std::shared_lock world(s.world);
  const Sequence& q = s.seq(id);
  if (layer < 0 || layer >= s.config.n_layers) {
    fail("kv cache: layer {} is outside 0..{}", layer, s.config.n_layers - 1);
  }
  const LayerCursor& c = q.layers[layer];
  const size_t g = s.group_of(layer);
  const GroupTable& t = q.groups[g];
  // Pages before `first` were released; inside a chunked step the step's pages behind every
  // window may have been recycled (and every earlier page is behind it too).
  size_t first = t.first;
  if (q.step && q.step->groups[g].ring && q.step->groups[g].ring_from > q.step->groups[g].n_pages) {
    first = std::max(first, q.step->groups[g].ring_from);
  }
  first = std::min<size_t>(first, c.encoded);
  const int slot = s.layout.layer_slot[layer];
  LayerView v;
  v.k_codec = s.k_codecs[layer].get();
  v.v_codec = s.v_codecs[layer].get();
  v.k_pages = s.arena->k_pool(slot);
  v.v_pages = s.arena->v_pool(slot);
  v.k_page_stride = s.arena->k_stride(slot);
  v.v_page_stride = s.arena->v_stride(slot);
  v.page_ids = std::span<const uint32_t>(t.pages.data() + first, c.encoded - first);
  v.first_page = first;
  v.k_tail = s.k_stage(*q.staging, layer) + static_cast<size_t>(c.start) * s.config.head_dim_k;
  v.v_tail = s.v_stage(*q.staging, layer) + static_cast<size_t>(c.start) * s.config.head_dim_v;
  v.tail_tokens = static_cast<int>(c.n - static_cast<int64_t>(c.encoded) * s.page_tokens());
  v.tail_head_stride = static_cast<size_t>(s.tail_cap);
  v.n_kv_heads = s.config.n_kv_heads;
  v.head_dim_k = s.config.head_dim_k;
  v.head_dim_v = s.config.head_dim_v;
  v.page_tokens = s.page_tokens();
  return v;
}

}  // namespace kvpack::cache
