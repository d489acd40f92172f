// The cache's sequences: construction, create / fork / free, add_tokens (the one place pages are
// taken), truncate and prefix reuse. Staging, encoding and views are in append.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "base/error.h"
#include "base/units.h"
#include "cache/cache_state.h"
#include "cache/prefix_hash.h"

namespace kvpack::cache {
namespace {

void validate(const CacheConfig& c) {
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
  if (c.max_sequences < 1 || c.max_sequences > (1 << 24)) {
    fail("kv cache: max_sequences {} is outside 1..16777216", c.max_sequences);
  }
  c.policy.validate(c.n_layers, c.head_dim_k, c.head_dim_v, c.page_tokens);
}

uint32_t pages_for(const CacheConfig& c, uint64_t page_bytes) {
  if (c.n_pages != 0) {
    if (c.n_pages == UINT32_MAX) fail("kv cache: {} pages is too many", c.n_pages);
    return c.n_pages;
  }
  const uint64_t n = c.budget_bytes / page_bytes;
  if (n == 0) {
    fail("kv cache budget {} holds no page: one page ({} tokens x {} layers, K and V) takes {}",
         format_bytes(static_cast<double>(c.budget_bytes)), c.page_tokens, c.n_layers,
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
  validate(config);
  const int P = config.page_tokens;
  tail_cap = config.hp_window == 0 ? P : 2 * config.hp_window + P;
  staging_floats = static_cast<size_t>(config.n_layers) * config.n_kv_heads * tail_cap *
                   (config.head_dim_k + config.head_dim_v);
  salt = cache_salt(config);
  std::vector<size_t> k_slices, v_slices;
  for (int l = 0; l < config.n_layers; ++l) {
    const format::LayerFormats f = config.policy.layer(l, config.n_layers);
    using format::Role;
    k_codecs.push_back(
        format::make_codec(f.k, {Role::K, config.head_dim_k, P, config.n_kv_heads,
                                 format::layer_seed(l, Role::K, config.model_seed)}));
    v_codecs.push_back(
        format::make_codec(f.v, {Role::V, config.head_dim_v, P, config.n_kv_heads,
                                 format::layer_seed(l, Role::V, config.model_seed)}));
    k_slices.push_back(k_codecs.back()->slice_bytes());
    v_slices.push_back(v_codecs.back()->slice_bytes());
  }
  uint64_t page_bytes = 0;
  for (int l = 0; l < config.n_layers; ++l) page_bytes += k_slices[l] + v_slices[l];
  arena = std::make_unique<Arena>(k_slices, v_slices, pages_for(config, page_bytes));
  pool = std::make_unique<PagePool>(arena->n_pages());
  seqs.resize(static_cast<size_t>(config.max_sequences));
  for (int i = config.max_sequences - 1; i >= 0; --i) free_slots.push_back(static_cast<SeqId>(i));
}

Sequence& Cache::State::seq(SeqId id) const {
  if (id >= seqs.size() || !seqs[id]) fail("kv cache: unknown sequence id {}", id);
  return *seqs[id];
}

std::unique_ptr<Sequence> Cache::State::new_sequence(uint64_t seq_salt) const {
  auto q = std::make_unique<Sequence>();
  q->salt = seq_salt;
  q->layers.resize(static_cast<size_t>(config.n_layers));
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

void Cache::State::release_pages(Sequence& q, size_t first_page) {
  for (size_t p = q.pages.size(); p > first_page; --p) pool->unref(q.pages[p - 1]);
  q.pages.resize(std::min(first_page, q.pages.size()));
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
  const uint32_t id = q.pages[p];
  for (int l = 0; l < config.n_layers; ++l) {
    const format::Codec& kc = *k_codecs[l];
    const format::Codec& vc = *v_codecs[l];
    const uint8_t* k_slice = arena->k_pool(l) + id * arena->k_stride(l);
    const uint8_t* v_slice = arena->v_pool(l) + id * arena->v_stride(l);
    for (int h = 0; h < config.n_kv_heads; ++h) {
      const size_t row = static_cast<size_t>(h) * tail_cap;
      kc.decode(h, k_slice + h * kc.head_bytes(), n, k_stage(st, l) + row * config.head_dim_k);
      vc.decode(h, v_slice + h * vc.head_bytes(), n, v_stage(st, l) + row * config.head_dim_v);
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
  child->pages = p.pages;
  child->hashes = p.hashes;
  child->layers = p.layers;
  std::lock_guard lock(s_->pool_mutex);
  child->staging = p.staging;  // shared until one of the two writes
  for (uint32_t id : p.pages) s_->pool->ref(id);
  try {
    return s_->insert(std::move(child));
  } catch (...) {
    for (uint32_t id : p.pages) s_->pool->unref(id);  // undo (insert's failure left no slot)
    throw;
  }
}

void Cache::free(SeqId id) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  std::lock_guard lock(s_->pool_mutex);
  s_->release_pages(q, 0);
  if (q.step) {
    for (const auto& [index, page] : q.step->displaced) s_->pool->unref(page);
  }
  s_->seqs[id].reset();  // drops one holder of the staging (two with a step's displaced one)
  s_->free_slots.push_back(id);
}

int64_t Cache::attach_prefix(SeqId id, std::span<const int32_t> tokens) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  if (!q.tokens.empty()) {
    fail("kv cache: attach_prefix needs an empty sequence; sequence {} has {} tokens", id,
         q.tokens.size());
  }
  const size_t P = static_cast<size_t>(s_->page_tokens());
  const size_t full = tokens.size() / P;
  std::vector<uint64_t> keys(full);  // the whole chain, hashed outside the lock
  for (size_t p = 0; p < full; ++p) {
    keys[p] = page_key(q.salt, p == 0 ? 0 : keys[p - 1], tokens.subspan(p * P, P));
  }
  std::lock_guard lock(s_->pool_mutex);
  q.pages.reserve(full);  // before any change: these may throw
  q.hashes.reserve(full);
  q.tokens.reserve(full * P);
  size_t hit = 0;
  for (; hit < full; ++hit) {
    const auto page = s_->pool->lookup(keys[hit]);
    if (!page) break;
    s_->pool->ref(*page);
    q.pages.push_back(*page);
  }
  q.hashes.assign(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(hit));
  q.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(hit * P));
  for (LayerCursor& c : q.layers)
    c = {static_cast<int64_t>(hit * P), static_cast<uint32_t>(hit), 0};
  s_->counters.prefix_hit_tokens += hit * P;
  s_->counters.prefix_miss_tokens += tokens.size() - hit * P;
  return static_cast<int64_t>(hit * P);
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
  s_->extend(q, tokens, nullptr);
}

void Cache::State::extend(Sequence& q, std::span<const int32_t> tokens, StepUndo* undo) {
  const size_t P = static_cast<size_t>(page_tokens());
  const size_t n_pages = (q.tokens.size() + tokens.size() + P - 1) / P;
  // Heap work first, so that nothing after the page allocation can fail.
  q.tokens.reserve(q.tokens.size() + tokens.size());
  q.pages.reserve(n_pages);
  q.hashes.reserve(n_pages);
  // Pages still filling must be this sequence's alone before append writes them. Only fork,
  // truncate (both between steps) and hashing (of complete pages) share a page, so no layer has
  // encoded one of these yet, and the first add_tokens after a fork or truncate un-shares all.
  uint32_t complete = UINT32_MAX;
  for (const LayerCursor& c : q.layers) complete = std::min(complete, c.encoded);
  std::vector<size_t> unshare;
  for (size_t p = complete; p < q.pages.size(); ++p) {
    if (pool->refcount(q.pages[p]) > 1 || pool->hashed(q.pages[p])) unshare.push_back(p);
  }
  std::unique_ptr<Staging> copy;
  if (q.staging.use_count() > 1) copy = clone_staging(q);
  if (undo != nullptr) {
    undo->n_tokens = q.tokens.size();
    undo->n_pages = q.pages.size();
    undo->layers = q.layers;
    undo->displaced.reserve(unshare.size());
    if (!copy) keep_tail_rows(q, tokens.size(), *undo);
  }
  const size_t n_new = n_pages - q.pages.size();
  std::vector<uint32_t> fresh;
  pool->allocate(static_cast<uint32_t>(n_new + unshare.size()), fresh);  // may throw
  // Commit (nothing here throws).
  for (size_t i = 0; i < unshare.size(); ++i) {
    const uint32_t old = q.pages[unshare[i]];
    if (undo != nullptr) {
      undo->displaced.emplace_back(unshare[i], old);  // keeps the reference the table held
    } else {
      pool->unref(old);
    }
    q.pages[unshare[i]] = fresh[n_new + i];
  }
  q.pages.insert(q.pages.end(), fresh.begin(), fresh.begin() + static_cast<std::ptrdiff_t>(n_new));
  if (copy) {
    if (undo != nullptr) undo->displaced_staging = std::move(q.staging);
    q.staging = std::move(copy);
  }
  if (!unshare.empty()) ++counters.copy_on_writes;
  q.tokens.insert(q.tokens.end(), tokens.begin(), tokens.end());
}

void Cache::truncate(SeqId id, int64_t n) {
  std::shared_lock world(s_->world);
  Sequence& q = s_->seq(id);
  const int64_t total = static_cast<int64_t>(q.tokens.size());
  if (n < 0 || n > total) {
    fail("kv cache: cannot drop {} tokens from sequence {} of {}", n, id, total);
  }
  if (!q.between_steps()) fail("kv cache: truncate of sequence {} in the middle of a step", id);
  if (n == 0) return;
  const int64_t P = s_->page_tokens();
  const int64_t keep = total - n;
  const int64_t encoded = q.layers[0].encoded;
  if (keep >= encoded * P) {  // only staged tokens go
    std::lock_guard lock(s_->pool_mutex);
    s_->release_pages(q, static_cast<size_t>((keep + P - 1) / P));
    q.tokens.resize(static_cast<size_t>(keep));
    for (LayerCursor& c : q.layers) {
      c.n = keep;
      if (keep == encoded * P) c.start = 0;
    }
    return;
  }
  // The cut goes through encoded page `cut`: its first `rest` tokens return to the tail.
  const size_t cut = static_cast<size_t>(keep / P);
  const int rest = static_cast<int>(keep % P);
  std::shared_ptr<Staging> target;
  if (rest > 0) {
    // The old tail is dropped entirely, so a shared staging is replaced, not copied.
    std::unique_lock lock(s_->pool_mutex);
    const bool shared = q.staging.use_count() > 1;
    lock.unlock();
    target = shared ? std::make_shared<Staging>(s_->staging_floats) : q.staging;
    s_->decode_into_staging(q, *target, cut, rest);
  }
  std::lock_guard lock(s_->pool_mutex);
  if (target) q.staging = std::move(target);
  s_->release_pages(q, cut + (rest > 0 ? 1 : 0));
  q.tokens.resize(static_cast<size_t>(keep));
  q.hashes.resize(std::min(q.hashes.size(), cut));
  for (LayerCursor& c : q.layers) c = {keep, static_cast<uint32_t>(cut), 0};
}

}  // namespace kvpack::cache
