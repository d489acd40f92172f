// The cache's sequences: construction, create / fork / free and add_tokens (the one place pages
// are taken). Prefix reuse is in prefix.cpp, truncate in truncate.cpp, steps in step.cpp,
// staging, encoding and views in append.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "base/error.h"
#include "base/units.h"
#include "cache/cache_state.h"
#include "cache/layout.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {
namespace {

uint32_t pages_for(const CacheConfig& c, uint64_t page_bytes, int slots) {
  if (c.n_pages != 0) {
    if (c.n_pages == UINT32_MAX) fail("kv cache: {} pages is too many", c.n_pages);
    return c.n_pages;
  }
  const uint64_t n = c.budget_bytes / page_bytes;
  if (n == 0) {
    fail(
        "kv cache budget {} holds no page: one page ({} tokens x {} layer slots, K and V) takes {}",
        format_bytes(static_cast<double>(c.budget_bytes)), c.page_tokens, slots,
        format_bytes(static_cast<double>(page_bytes)));
  }
  if (n >= UINT32_MAX) fail("kv cache budget {} is too large", c.budget_bytes);
  return static_cast<uint32_t>(n);
}

}  // namespace

Staging::Staging(size_t floats) {
  // Not zeroed: only rows written by append or decode are ever read.
  void* p = std::aligned_alloc(kCacheLine, round_up(std::max<size_t>(floats, 1) * 4, kCacheLine));
  if (p == nullptr) throw std::bad_alloc();
  data.reset(static_cast<float*>(p));
}

bool Sequence::between_steps() const {
  for (const LayerCursor& c : layers) {
    if (c.n != static_cast<int64_t>(tokens.size())) return false;
  }
  return !step;
}

Cache::State::State(const CacheConfig& c) : config(c) {
  validate_config(config);
  layout = page_layout(config);
  const int P = config.page_tokens;
  tail_cap = config.hp_window == 0 ? P : 2 * config.hp_window + P;
  staging_floats = static_cast<size_t>(config.n_layers) * config.n_kv_heads * tail_cap *
                   (config.head_dim_k + config.head_dim_v);
  salt = cache_salt(config);
  for (int l = 0; l < config.n_layers; ++l) {
    const format::LayerFormats f = config.policy.layer(l, config.n_layers);
    using format::Role;
    k_codecs.push_back(
        format::make_codec(f.k, {Role::K, config.head_dim_k, P, config.n_kv_heads,
                                 format::layer_seed(l, Role::K, config.model_seed)}));
    v_codecs.push_back(
        format::make_codec(f.v, {Role::V, config.head_dim_v, P, config.n_kv_heads,
                                 format::layer_seed(l, Role::V, config.model_seed)}));
    KVPACK_ASSERT(k_codecs.back()->slice_bytes() == layout.layer_k_bytes[l] &&
                      v_codecs.back()->slice_bytes() == layout.layer_v_bytes[l],
                  "layer {}: codec slices differ from the page layout's", l);
  }
  const std::vector<size_t> k_slots(layout.k_slot_bytes.begin(), layout.k_slot_bytes.end());
  const std::vector<size_t> v_slots(layout.v_slot_bytes.begin(), layout.v_slot_bytes.end());
  arena = std::make_unique<Arena>(k_slots, v_slots,
                                  pages_for(config, layout.page_bytes, layout.slots()));
  pool = std::make_unique<PagePool>(arena->n_pages());
  page_group.assign(arena->n_pages(), 0);
  seqs.resize(static_cast<size_t>(config.max_sequences));
  for (int i = config.max_sequences - 1; i >= 0; --i) free_slots.push_back(static_cast<SeqId>(i));
}

uint32_t Cache::State::group_encoded(const Sequence& q, size_t g) const {
  uint32_t e = UINT32_MAX;
  for (int l : layout.groups[g].layers) e = std::min(e, q.layers[l].encoded);
  return e;
}

size_t Cache::State::first_needed(const Sequence& q, size_t g) const {
  int64_t n = INT64_MAX;
  for (int l : layout.groups[g].layers) n = std::min(n, q.layers[l].n);
  const int64_t d = layout.window_start(g, n);
  return static_cast<size_t>(std::min<int64_t>(d, group_encoded(q, g)));
}

uint8_t* Cache::State::k_slice(int layer, uint32_t page) const {
  const int slot = layout.layer_slot[layer];
  return arena->k_pool(slot) + page * arena->k_stride(slot);
}

uint8_t* Cache::State::v_slice(int layer, uint32_t page) const {
  const int slot = layout.layer_slot[layer];
  return arena->v_pool(slot) + page * arena->v_stride(slot);
}

Sequence& Cache::State::seq(SeqId id) const {
  if (id >= seqs.size() || !seqs[id]) fail("kv cache: unknown sequence id {}", id);
  return *seqs[id];
}

std::unique_ptr<Sequence> Cache::State::new_sequence(uint64_t seq_salt) const {
  auto q = std::make_unique<Sequence>();
  q->salt = seq_salt;
  q->layers.resize(static_cast<size_t>(config.n_layers));
  q->groups.resize(n_groups());
  q->staging = std::make_shared<Staging>(staging_floats);
  return q;
}

SeqId Cache::State::insert(std::unique_ptr<Sequence> q) {
  if (free_slots.empty()) {
    fail("kv cache: too many sequences ({} are live; CacheConfig::max_sequences)", seqs.size());
  }
  const SeqId id = free_slots.back();
  free_slots.pop_back();
  seqs[id] = std::move(q);
  return id;
}

void Cache::State::release_pages(Sequence& q, size_t g, size_t from) {
  GroupTable& t = q.groups[g];
  for (size_t p = t.pages.size(); p > from; --p) {
    if (t.pages[p - 1] != kNoPage) pool->unref(t.pages[p - 1]);
  }
  t.pages.resize(std::min(from, t.pages.size()));
  t.first = std::min(t.first, t.pages.size());
  t.registered = std::min(t.registered, t.pages.size());
}

void Cache::State::release_all(Sequence& q, size_t from) {
  for (size_t g = 0; g < n_groups(); ++g) release_pages(q, g, from);
}

void Cache::State::release_front(Sequence& q, size_t g, size_t to) {
  GroupTable& t = q.groups[g];
  to = std::min(to, t.pages.size());
  // Newest first, like release_pages: the LRU list then evicts the oldest tokens first.
  for (size_t p = to; p > t.first; --p) {
    uint32_t& id = t.pages[p - 1];
    if (id != kNoPage) pool->unref(id);
    id = kNoPage;
  }
  t.first = std::max(t.first, to);
}

uint32_t Cache::State::releasable(const Sequence& q, size_t g) const {
  if (!sliding(g)) return 0;
  const GroupTable& t = q.groups[g];
  const size_t to = std::min(first_needed(q, g), t.pages.size());
  uint32_t n = 0;
  for (size_t p = t.first; p < to; ++p)
    n += t.pages[p] != kNoPage && pool->refcount(t.pages[p]) == 1;
  return n;
}

std::unique_ptr<Staging> Cache::State::clone_staging(const Sequence& q) const {
  auto st = std::make_unique<Staging>(staging_floats);
  const float* from = q.staging->data.get();
  float* to = st->data.get();
  for_each_tail_run(q.layers, [&](size_t offset, size_t floats) {
    std::memcpy(to + offset, from + offset, floats * sizeof(float));
  });
  return st;
}

void Cache::State::decode_into_staging(Sequence& q, Staging& st, size_t p, int n) const {
  for (int l = 0; l < config.n_layers; ++l) {
    const uint32_t id = q.groups[group_of(l)].pages[p];
    KVPACK_ASSERT(id != kNoPage, "decoding released page {} of layer {}", p, l);
    const format::Codec& kc = *k_codecs[l];
    const format::Codec& vc = *v_codecs[l];
    const uint8_t* ks = k_slice(l, id);
    const uint8_t* vs = v_slice(l, id);
    for (int h = 0; h < config.n_kv_heads; ++h) {
      const size_t row = static_cast<size_t>(h) * tail_cap;
      kc.decode(h, ks + h * kc.head_bytes(), n, k_stage(st, l) + row * config.head_dim_k);
      vc.decode(h, vs + h * vc.head_bytes(), n, v_stage(st, l) + row * config.head_dim_v);
    }
  }
}

// ---- Cache: construction and accessors ----

Cache::Cache(const CacheConfig& config) : s_(std::make_unique<State>(config)) {}
Cache::~Cache() = default;

const CacheConfig& Cache::config() const {
  return s_->config;
}
uint64_t Cache::page_bytes() const {
  return s_->arena->page_bytes();
}
const PageLayout& Cache::layout() const {
  return s_->layout;
}
uint32_t Cache::n_pages() const {
  return s_->arena->n_pages();
}
const format::Codec& Cache::k_codec(int layer) const {
  return *s_->k_codecs.at(layer);
}
const format::Codec& Cache::v_codec(int layer) const {
  return *s_->v_codecs.at(layer);
}

// ---- sequences ----

SeqId Cache::create(std::string_view salt) {
  std::shared_lock world(s_->world);
  auto q = s_->new_sequence(sequence_salt(s_->salt, salt));
  std::lock_guard lock(s_->pool_mutex);
  return s_->insert(std::move(q));
}

SeqId Cache::fork(SeqId parent) {
  std::shared_lock world(s_->world);
  const Sequence& p = s_->seq(parent);
  if (!p.between_steps()) fail("kv cache: fork of sequence {} in the middle of a step", parent);
  auto child = std::make_unique<Sequence>();
  child->salt = p.salt;
  child->tokens = p.tokens;
  child->keys = p.keys;
  child->groups = p.groups;
  child->layers = p.layers;
  const auto ref_all = [&](bool ref) {
    for (const GroupTable& t : p.groups) {
      for (uint32_t id : t.pages) {
        if (id == kNoPage) continue;
        if (ref) {
          s_->pool->ref(id);
        } else {
          s_->pool->unref(id);
        }
      }
    }
  };
  std::lock_guard lock(s_->pool_mutex);
  child->staging = p.staging;  // shared until one of the two writes
  ref_all(true);
  try {
    return s_->insert(std::move(child));
  } catch (...) {
    ref_all(false);  // undo (insert's failure left no slot)
    throw;
  }
}

void Cache::free(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  std::lock_guard lock(s_->pool_mutex);
  s_->release_all(q, 0);
  if (q.step) {
    for (const GroupUndo& u : q.step->groups) {
      for (const auto& [index, page] : u.displaced) s_->pool->unref(page);
      for (uint32_t page : u.spares) s_->pool->unref(page);
    }
  }
  s_->seqs[id].reset();  // drops one holder of the staging (two with a step's displaced one)
  s_->free_slots.push_back(id);
}

void Cache::add_tokens(SeqId id, std::span<const int32_t> tokens) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (q.step) {
    fail("kv cache: add_tokens on sequence {} inside a step (commit_step or rollback_step first)",
         id);
  }
  if (tokens.empty()) return;
  std::lock_guard lock(s_->pool_mutex);
  s_->extend(q, tokens, nullptr, 0);
}

void Cache::State::extend(Sequence& q, std::span<const int32_t> tokens, StepUndo* undo, int chunk) {
  const size_t P = static_cast<size_t>(page_tokens()), G = n_groups();
  const size_t n_pages = (q.tokens.size() + tokens.size() + P - 1) / P;
  // Heap work first, so that nothing after the page allocation can fail.
  q.tokens.reserve(q.tokens.size() + tokens.size());
  q.keys.reserve(n_pages);
  for (GroupTable& t : q.groups) t.pages.reserve(n_pages);
  // Pages still filling must be this sequence's alone before append writes them. Only fork,
  // truncate (both between steps) and hashing (of complete pages) share a page, so no layer has
  // encoded one of these yet, and the first add_tokens after a fork or truncate un-shares all.
  std::vector<std::vector<size_t>> unshare(G);
  std::vector<uint32_t> take(G);
  uint32_t total = 0, room = 0;
  for (size_t g = 0; g < G; ++g) {
    const GroupTable& t = q.groups[g];
    for (size_t p = std::max<size_t>(group_encoded(q, g), t.first); p < t.pages.size(); ++p) {
      const uint32_t id = t.pages[p];
      if (id != kNoPage && (pool->refcount(id) > 1 || pool->hashed(id))) unshare[g].push_back(p);
    }
    const uint64_t own = n_pages - t.pages.size();
    const bool ring = undo != nullptr && chunk > 0 && sliding(g);
    take[g] = static_cast<uint32_t>(ring ? std::min(own, layout.ring_pages(g, chunk)) : own);
    total += take[g] + static_cast<uint32_t>(unshare[g].size());
    if (undo == nullptr) room += releasable(q, g);
  }
  std::unique_ptr<Staging> copy;
  if (q.staging.use_count() > 1) copy = clone_staging(q);
  if (undo != nullptr) {
    undo->n_tokens = q.tokens.size();
    undo->chunk = chunk;
    undo->layers = q.layers;
    undo->groups.resize(G);
    for (size_t g = 0; g < G; ++g) {
      GroupUndo& u = undo->groups[g];
      u.n_pages = q.groups[g].pages.size();
      u.displaced.reserve(unshare[g].size());
      u.ring = take[g] < n_pages - u.n_pages;
      u.ring_from = u.n_pages;
      u.taken = u.n_pages + take[g];
      if (u.ring) u.spares.reserve(take[g]);
    }
    if (!copy) keep_tail_rows(q, tokens.size(), *undo);
  }
  std::vector<uint32_t> fresh;
  fresh.reserve(total);
  if (total > pool->available() + room) {
    fail("kv cache full: need {} page{}, {} free, {} evictable{}", total, total == 1 ? "" : "s",
         pool->free_pages(), pool->cached_pages(),
         room == 0 ? std::string() : fmt::format(", {} behind a sliding window", room));
  }
  // Commit (nothing here throws).
  if (undo == nullptr) {
    for (size_t g = 0; g < G; ++g) {
      if (sliding(g)) release_front(q, g, first_needed(q, g));
    }
  }
  pool->allocate(total, fresh);
  size_t next = 0;
  for (size_t g = 0; g < G; ++g) {
    GroupTable& t = q.groups[g];
    for (size_t p : unshare[g]) {
      const uint32_t old = t.pages[p];
      if (undo != nullptr) {
        undo->groups[g].displaced.emplace_back(p, old);  // keeps the reference the table held
      } else {
        pool->unref(old);
      }
      t.pages[p] = fresh[next++];
      page_group[t.pages[p]] = static_cast<uint16_t>(g);
    }
    for (uint32_t i = 0; i < take[g]; ++i) {
      t.pages.push_back(fresh[next++]);
      page_group[t.pages.back()] = static_cast<uint16_t>(g);
    }
    t.pages.resize(n_pages, kNoPage);  // a ring's later pages come from its own (step.cpp)
  }
  if (copy) {
    if (undo != nullptr) undo->displaced_staging = std::move(q.staging);
    q.staging = std::move(copy);
  }
  bool copied = false;
  for (const auto& u : unshare) copied |= !u.empty();
  if (copied) ++counters.copy_on_writes;
  q.tokens.insert(q.tokens.end(), tokens.begin(), tokens.end());
}

}  // namespace kvpack::cache
