// Randomized operation sequences checked against a plain reference model: every sequence reads
// back what was appended (f32 exactly; other formats as their codec stores a row, or within a
// bound for formats that quantize across a page); holders equal refcounts; a failed allocation
// changes nothing; a rolled-back step leaves the cache as it was; compaction preserves contents;
// no page leaks once every sequence is freed.
//
// K/V rows depend only on the salt and the token prefix, as a model's do, so a page handed out
// by attach_prefix must hold exactly the rows the new holder would have computed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cache_test_util.h"

namespace kvpack::cache {
namespace {

using testing::error_of;
using testing::prefix_keys;
using testing::read_back;

struct RefSeq {
  SeqId id = 0;
  int salt = 0;                      // 0: the cache's; 1: a tagged variant
  std::vector<int32_t> tokens;       // what the sequence holds
  int64_t encoded = 0;               // pages encoded (every layer, between operations)
  std::vector<uint8_t> was_encoded;  // [tokens]: stored through the codec at some point
  int doc = 0;                       // the document it draws tokens from (shared prefixes)
  bool on_doc = true;                // tokens so far are a prefix of the document
  // Lossy formats: [tokens][layers][K, V][heads] error each token's encodings may have added.
  std::vector<float> allow;
};

struct Options {
  std::string policy = "k=f32,v=f32";
  int page_tokens = 16;
  int hp_window = 0;
  std::vector<int> windows;  // per layer (0: full); empty: two full layers
  uint32_t n_pages = 28;
  int ops = 30000;
  uint64_t seed = 1;
};

class Harness {
 public:
  explicit Harness(const Options& o)
      : opt_(o),
        cache_(testing::small_config(o.n_pages, o.policy, o.page_tokens, o.hp_window, o.windows)),
        cfg_(cache_.config()),
        rng_(o.seed) {
    for (int d = 0; d < 3; ++d) docs_.push_back(testing::iota_tokens(600, 100000 * (d + 1)));
    exact_ = true;
    for (int l = 0; l < cfg_.n_layers; ++l) {
      for (const format::Codec* c : {&cache_.k_codec(l), &cache_.v_codec(l)}) {
        const auto id = c->info().id;
        exact_ &= id == format::FormatId::f32 || id == format::FormatId::f16 ||
                  id == format::FormatId::bf16;
      }
    }
  }

  void run() {
    for (int op = 0; op < opt_.ops; ++op) {
      step();
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "seed " << opt_.seed << ", operation " << op;
        return;
      }
      if (op % 500 == 499) check_all();
    }
    check_all();
    finish();
  }

  uint64_t failed_allocations = 0, attached_tokens = 0, nan_rejections = 0, rollbacks = 0;
  uint64_t chunked_steps = 0, refused_truncations = 0;

 private:
  void step() {
    const uint64_t r = rng_.below(100);
    if (seqs_.empty() || (r < 8 && seqs_.size() < 8)) return create();
    RefSeq& q = seqs_[rng_.below(seqs_.size())];
    if (r < 60) return extend(q, 1 + static_cast<int>(rng_.below(r < 40 ? 3 : 40)));
    if (r < 70) return truncate(q);
    if (r < 75 && seqs_.size() < 8) return fork(q);
    if (r < 85 || q.tokens.size() > 400) return free(q);
    if (r < 87) {
      cache_.compact();
      if (rng_.coin()) cache_.shrink();
      return check_all();
    }
    verify(q);
  }

  // Salt-dependent rows: a sequence of the other salt must never see these.
  void rows(const RefSeq& q, int layer, size_t from, size_t to, std::vector<float>& k,
            std::vector<float>& v) const {
    const auto keys = prefix_keys(q.tokens);
    const size_t kw = static_cast<size_t>(cfg_.n_kv_heads) * cfg_.head_dim_k;
    const size_t vw = static_cast<size_t>(cfg_.n_kv_heads) * cfg_.head_dim_v;
    k.resize((to - from) * kw);
    v.resize((to - from) * vw);
    for (size_t t = from; t < to; ++t) {
      // Uniform in [-4, 4) with 24 random bits: not representable in f16 or bf16.
      uint64_t g = mix_seed(keys[t] + static_cast<uint64_t>(q.salt), static_cast<uint64_t>(layer));
      const auto value = [&g] { return static_cast<float>(splitmix64(g) >> 40) * 0x1p-21f - 4; };
      for (size_t i = 0; i < kw; ++i) k[(t - from) * kw + i] = value();
      for (size_t i = 0; i < vw; ++i) v[(t - from) * vw + i] = value();
    }
  }

  void create() {
    RefSeq q;
    q.salt = rng_.below(6) == 0 ? 1 : 0;
    q.id = cache_.create(q.salt == 1 ? "tagged" : "");
    q.doc = static_cast<int>(rng_.below(docs_.size()));
    if (rng_.coin()) {  // ask for a prefix of the document (sometimes with a private turn)
      std::vector<int32_t> ask(docs_[q.doc].begin(),
                               docs_[q.doc].begin() + static_cast<long>(rng_.below(300)));
      if (rng_.coin()) ask.push_back(-1 - static_cast<int32_t>(rng_.below(5)));
      const int64_t got = cache_.attach_prefix(q.id, ask);
      const int64_t P = cfg_.page_tokens;
      ASSERT_EQ(got % P, 0);
      ASSERT_LE(got, static_cast<int64_t>(ask.size()) / P * P);
      q.tokens.assign(ask.begin(), ask.begin() + got);
      q.was_encoded.assign(static_cast<size_t>(got), 1);
      q.encoded = got / P;
      attached_tokens += static_cast<uint64_t>(got);
      // Whoever computed these pages may have encoded a token more than once (truncate, refill).
      for (int64_t p = 0; p < q.encoded; ++p) add_allowance(q, p, true);
    }
    seqs_.push_back(q);
    verify(seqs_.back());
  }

  // Residency, page tables and page states; for a rolled-back step without the counters and the
  // touched and peak high-water marks (they keep counting the work it did).
  std::string snapshot(bool counters = true) const {
    Residency r = cache_.residency();
    if (!counters) {
      r.counters = {};
      r.touched_bytes = 0;
      r.peak = {};
    }
    std::string s = r.to_json(-1);
    for (const RefSeq& q : seqs_) {
      for (size_t g = 0; g < cache_.layout().groups.size(); ++g) {
        s += fmt::format("|{}", fmt::join(cache_.page_table(q.id, static_cast<int>(g)), " "));
      }
    }
    for (uint32_t p = 0; p < cache_.n_pages(); ++p) {
      const PageInfo i = cache_.page_info(p);
      s += fmt::format(",{}{}", i.refcount, i.hashed ? "h" : "");
    }
    return s;
  }

  void extend(RefSeq& q, int m) {
    std::vector<int32_t> add;
    const auto& doc = docs_[q.doc];
    bool on_doc = q.on_doc;
    for (int i = 0; i < m; ++i) {
      const size_t pos = q.tokens.size() + add.size();
      on_doc &= pos < doc.size() && rng_.below(20) != 0;
      add.push_back(on_doc ? doc[pos] : static_cast<int32_t>(rng_.below(50)));
    }
    // Up to 4 new pages and 4 un-shared ones per page group: only then can add_tokens fail (the
    // snapshot is the slow part of this test, so it is taken only when it can matter).
    const Residency r = cache_.residency();
    const bool may_fail = r.free.pages + r.cached.pages < 8 * r.groups.size();
    // A third of the extensions are steps; half of those fail partway and are rolled back. A
    // third of the steps append in chunks, layer by layer, as the forward pass does.
    const bool step = rng_.below(3) == 0, roll_back = step && rng_.coin();
    const int chunk = step && rng_.below(3) == 0 ? 1 + static_cast<int>(rng_.below(12)) : 0;
    const std::string before = may_fail || roll_back ? snapshot(/*counters=*/!roll_back) : "";
    const std::string err = error_of([&] {
      if (step) {
        cache_.begin_step(q.id, add, chunk);
      } else {
        cache_.add_tokens(q.id, add);
      }
    });
    if (!err.empty()) {
      ASSERT_TRUE(may_fail) << err;
      ASSERT_EQ(err.rfind("kv cache full: need ", 0), 0u) << err;
      ASSERT_EQ(snapshot(!roll_back), before) << "a failed add_tokens changed the cache";
      ++failed_allocations;
      return verify(q);
    }
    if (roll_back) return fail_step(q, add, before, r.counters.evictions, chunk);
    q.on_doc = on_doc;
    const size_t from = q.tokens.size();
    q.tokens.insert(q.tokens.end(), add.begin(), add.end());
    q.was_encoded.resize(q.tokens.size(), 0);
    if (chunk > 0) {
      append_chunked(q, from, chunk, SIZE_MAX);
      ++chunked_steps;
    } else {
      append_layers(q, from,
                    std::vector<size_t>(static_cast<size_t>(cfg_.n_layers), q.tokens.size()));
    }
    if (step) cache_.commit_step(q.id);
    const int64_t P = cfg_.page_tokens;
    while (static_cast<int64_t>(q.tokens.size()) - cfg_.hp_window >= (q.encoded + 1) * P) {
      std::fill_n(q.was_encoded.begin() + q.encoded * P, P, 1);
      add_allowance(q, q.encoded, false);
      ++q.encoded;
    }
    if (rng_.below(4) == 0) verify(q);
  }

  // An open step's layers append part of its tokens (each layer as far as it gets), the cache
  // is sometimes compacted meanwhile, and the step is rolled back: everything must be as before
  // begin_step, except pages the step evicted (free now rather than cached) and page ids that
  // compaction moved.
  void fail_step(RefSeq& q, const std::vector<int32_t>& add, const std::string& before,
                 uint64_t evictions_before, int chunk) {
    RefSeq trial = q;
    trial.tokens.insert(trial.tokens.end(), add.begin(), add.end());
    if (chunk > 0) {
      const size_t appends = (add.size() + chunk - 1) / chunk * cfg_.n_layers;
      append_chunked(trial, q.tokens.size(), chunk, rng_.below(appends + 1));
    } else {
      std::vector<size_t> until;
      for (int l = 0; l < cfg_.n_layers; ++l)
        until.push_back(q.tokens.size() + rng_.below(add.size() + 1));
      append_layers(trial, q.tokens.size(), until);
    }
    const bool compacted = rng_.below(4) == 0;
    if (compacted) {
      cache_.compact();
      cache_.check_invariants();
    }
    cache_.rollback_step(q.id);
    ++rollbacks;
    if (!compacted && cache_.residency().counters.evictions == evictions_before) {
      ASSERT_EQ(snapshot(/*counters=*/false), before) << "a rolled-back step changed the cache";
    }
    ASSERT_EQ(cache_.token_ids(q.id), q.tokens);
    verify(q);
  }

  // Appends tokens [from, until[layer]) at every layer, in random chunks interleaved across
  // layers, sometimes first trying a chunk with a NaN in it (rejected, nothing changes).
  void append_layers(RefSeq& q, size_t from, const std::vector<size_t>& until) {
    std::vector<size_t> done(static_cast<size_t>(cfg_.n_layers), from);
    std::vector<float> k, v;
    for (bool left = true; left;) {
      left = false;
      for (int l = 0; l < cfg_.n_layers; ++l) {
        const size_t to = until[l];
        if (done[l] == to) continue;
        const size_t n = std::min(to - done[l], 1 + rng_.below(12));
        rows(q, l, done[l], done[l] + n, k, v);
        if (rng_.below(30) == 0) {
          std::vector<float>& bad = rng_.coin() ? k : v;
          const size_t at = rng_.below(bad.size());
          const float keep = bad[at];
          bad[at] = rng_.coin() ? NAN : INFINITY;
          ASSERT_NE(error_of([&] {
                      cache_.append(q.id, l, k.data(), v.data(), static_cast<int>(n));
                    }).find("non-finite"),
                    std::string::npos);
          bad[at] = keep;
          ++nan_rejections;
        }
        cache_.append(q.id, l, k.data(), v.data(), static_cast<int>(n));
        done[l] += n;
        left |= done[l] < to;
      }
    }
  }

  // Appends tokens [from, end) as a chunked step's forward pass does: chunk by chunk, every layer
  // in turn, and stops after `appends` appends (a step that fails partway).
  void append_chunked(RefSeq& q, size_t from, int chunk, size_t appends) {
    std::vector<float> k, v;
    for (size_t a = from; a < q.tokens.size(); a += static_cast<size_t>(chunk)) {
      const size_t b = std::min(q.tokens.size(), a + static_cast<size_t>(chunk));
      for (int l = 0; l < cfg_.n_layers; ++l) {
        if (appends-- == 0) return;
        rows(q, l, a, b, k, v);
        cache_.append(q.id, l, k.data(), v.data(), static_cast<int>(b - a));
      }
    }
  }

  void truncate(RefSeq& q) {
    const int64_t n = static_cast<int64_t>(rng_.below(q.tokens.size() + 1));
    if (!cfg_.layer_window.empty()) {  // may need released pages that are gone
      const std::string before = snapshot();
      const std::string err = error_of([&] { cache_.truncate(q.id, n); });
      if (!err.empty()) {
        ASSERT_NE(err.find("no longer cached"), std::string::npos) << err;
        ASSERT_EQ(snapshot(), before) << "a refused truncate changed the cache";
        ++refused_truncations;
        return verify(q);
      }
    } else {
      cache_.truncate(q.id, n);
    }
    const int64_t keep = static_cast<int64_t>(q.tokens.size()) - n;
    q.tokens.resize(static_cast<size_t>(keep));
    q.was_encoded.resize(static_cast<size_t>(keep));
    q.allow.resize(std::min(q.allow.size(), static_cast<size_t>(keep) * allow_stride()));
    if (keep < q.encoded * cfg_.page_tokens) q.encoded = keep / cfg_.page_tokens;
    const auto& doc = docs_[q.doc];
    q.on_doc =
        q.tokens.size() <= doc.size() && std::equal(q.tokens.begin(), q.tokens.end(), doc.begin());
    verify(q);
  }

  void fork(const RefSeq& q) {
    RefSeq child = q;
    child.id = cache_.fork(q.id);
    seqs_.push_back(child);
    verify(seqs_.back());
  }

  void free(const RefSeq& q) {
    const SeqId id = q.id;
    cache_.free(id);
    seqs_.erase(std::find_if(seqs_.begin(), seqs_.end(), [&](auto& s) { return s.id == id; }));
  }

  size_t allow_stride() const { return static_cast<size_t>(cfg_.n_layers) * 2 * cfg_.n_kv_heads; }

  // Updates the allowance of page p's tokens for one more encoding, whose error e is measured
  // on the rows as computed. A token truncate decoded (allowance a) is re-encoded from rows
  // already off by up to a, and quantizers scale their error with their input: a -> 2a + e.
  // Attached pages get 4e: their history (how often a token was re-encoded) is not visible.
  void add_allowance(RefSeq& q, int64_t p, bool attached) {
    if (exact_) return;
    const size_t P = static_cast<size_t>(cfg_.page_tokens), H = cfg_.n_kv_heads;
    const size_t page = static_cast<size_t>(p);
    q.allow.resize(std::max(q.allow.size(), (page + 1) * P * allow_stride()), 0.0f);
    std::vector<float> rk, rv, x, out;
    for (int l = 0; l < cfg_.n_layers; ++l) {
      rows(q, l, page * P, (page + 1) * P, rk, rv);
      for (int role = 0; role < 2; ++role) {
        const format::Codec& c = role == 0 ? cache_.k_codec(l) : cache_.v_codec(l);
        const size_t d = static_cast<size_t>(c.head_dim());
        const std::vector<float>& r = role == 0 ? rk : rv;
        std::vector<uint8_t> block(c.head_bytes());
        for (size_t h = 0; h < H; ++h) {
          x.resize(P * d);
          out.resize(P * d);
          for (size_t t = 0; t < P; ++t) std::copy_n(&r[(t * H + h) * d], d, &x[t * d]);
          c.encode(static_cast<int>(h), x.data(), static_cast<int>(P), block.data());
          c.decode(static_cast<int>(h), block.data(), static_cast<int>(P), out.data());
          float e = 0;
          for (size_t i = 0; i < x.size(); ++i) e = std::max(e, std::fabs(out[i] - x[i]));
          for (size_t t = 0; t < P; ++t) {
            float& a = q.allow[((page * P + t) * cfg_.n_layers + l) * 2 * H + role * H + h];
            a = attached ? 4 * e : 2 * a + e;
          }
        }
      }
    }
  }

  // Row as the codec stores one token (exact for the per-value float formats).
  void stored_row(const format::Codec& c, int head, const float* x, float* out) {
    std::vector<uint8_t> block(c.head_bytes());
    c.encode(head, x, 1, block.data());
    c.decode(head, block.data(), 1, out);
  }

  void verify(const RefSeq& q) {
    std::vector<float> k, v, want;
    const auto n = static_cast<int64_t>(q.tokens.size());
    for (int l = 0; l < cfg_.n_layers; ++l) {
      const LayerView view = cache_.view(q.id, l);
      ASSERT_EQ(static_cast<int64_t>(view.first_page + view.page_ids.size()), q.encoded)
          << "layer " << l;
      ASSERT_EQ(view.n_tokens(), n);
      // A sliding layer holds at least the window of the next token.
      const int w = cfg_.layer_window.empty() ? 0 : cfg_.layer_window[l];
      ASSERT_LE(view.first_token(), w == 0 ? 0 : std::max<int64_t>(0, n - w + 1)) << "layer " << l;
      const auto got = read_back(view);
      rows(q, l, 0, q.tokens.size(), k, v);
      const auto from = static_cast<size_t>(view.first_token());
      compare(q, from, got.k, k, cache_.k_codec(l), cfg_.head_dim_k, l, 0);
      compare(q, from, got.v, v, cache_.v_codec(l), cfg_.head_dim_v, l, 1);
    }
  }

  // Tokens [from, end) of one layer and role read back against the rows as computed.
  void compare(const RefSeq& q, size_t from, const std::vector<float>& got,
               const std::vector<float>& orig, const format::Codec& codec, int d, int layer,
               int role_index) {
    const char* role = role_index == 0 ? "K" : "V";
    std::vector<float> want(static_cast<size_t>(d));
    for (size_t t = from; t < q.tokens.size(); ++t) {
      for (int h = 0; h < cfg_.n_kv_heads; ++h) {
        const size_t at = (t * cfg_.n_kv_heads + h) * d;
        if (!q.was_encoded[t]) {  // never encoded: exactly as appended
          ASSERT_EQ(std::memcmp(&got[at], &orig[at], d * sizeof(float)), 0)
              << role << " layer " << layer << " token " << t << " head " << h;
          continue;
        }
        if (exact_) {
          stored_row(codec, h, &orig[at], want.data());
          for (int j = 0; j < d; ++j) {
            ASSERT_EQ(got[at + j], want[j]) << role << " layer " << layer << " token " << t;
          }
        } else {  // within the codec's error on this token's pages (plus re-encoding slack)
          const float allowed = q.allow[(t * cfg_.n_layers + layer) * 2 * cfg_.n_kv_heads +
                                        static_cast<size_t>(role_index) * cfg_.n_kv_heads + h];
          const double bound = 1.25 * allowed + 1e-6;
          for (int j = 0; j < d; ++j) {
            ASSERT_LE(std::fabs(got[at + j] - orig[at + j]), bound)
                << role << " layer " << layer << " token " << t;
          }
        }
      }
    }
  }

  void check_all() {
    cache_.check_invariants();
    for (const RefSeq& q : seqs_) {
      verify(q);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  void finish() {
    for (const RefSeq& q : std::vector<RefSeq>(seqs_)) free(q);
    const Residency r = cache_.residency();
    EXPECT_EQ(r.active.pages + r.shared.pages, 0u) << "pages leaked";
    EXPECT_EQ(r.free.pages + r.cached.pages, r.reserved.pages);
    EXPECT_EQ(r.sequences, 0u);
    EXPECT_EQ(r.tail_unused_slots, 0u);
    cache_.check_invariants();
    cache_.compact();
    cache_.shrink();
    EXPECT_EQ(cache_.residency().touched_bytes, r.cached.pages * r.page_bytes);
  }

  Options opt_;
  Cache cache_;
  const CacheConfig& cfg_;
  Rng rng_;
  bool exact_ = true;
  std::vector<std::vector<int32_t>> docs_;
  std::vector<RefSeq> seqs_;
};

// >= 10^5 operations over fixed seeds, f32 pages: every value reads back bit for bit.
TEST(RandomOps, F32MatchesTheReferenceModel) {
  const std::pair<uint64_t, int> runs[] = {{1, 0}, {2, 0}, {3, 7}, {4, 40}};
  for (const auto& [seed, window] : runs) {
    Options o;
    o.seed = seed;
    o.hp_window = window;
    Harness h(o);
    h.run();
    if (HasFatalFailure()) return;
    // The workload has to reach the paths it is meant to test.
    EXPECT_GT(h.failed_allocations, 10u) << "seed " << seed;
    EXPECT_GT(h.attached_tokens, 1000u) << "seed " << seed;
    EXPECT_GT(h.nan_rejections, 10u) << "seed " << seed;
    EXPECT_GT(h.rollbacks, 1000u) << "seed " << seed;
  }
}

// Sliding-window layers beside full ones: pages released behind the window, chunked steps
// recycling their own, prefixes attached with only the window's pages, truncations that take
// released pages back from the prefix index or are refused unchanged.
TEST(RandomOps, SlidingWindowsMatchTheReferenceModel) {
  struct Run {
    uint64_t seed;
    std::vector<int> windows;
    int hp_window;
    std::string policy;
  };
  const Run runs[] = {{21, {24, 0}, 0, "k=f32,v=f32"},
                      {22, {40, 40, 0, 0}, 0, "k=f32,v=f32"},
                      {23, {24, 0, 56}, 5, "k=f32,v=f32"},
                      {24, {20, 0}, 0, "k=q8,v=q4"}};
  for (const Run& run : runs) {
    SCOPED_TRACE(fmt::format("seed {} windows {} hp {}", run.seed, fmt::join(run.windows, ","),
                             run.hp_window));
    Options o;
    o.seed = run.seed;
    o.windows = run.windows;
    o.hp_window = run.hp_window;
    o.policy = run.policy;
    o.n_pages = 40;
    o.ops = run.policy == "k=f32,v=f32" ? 8000 : 4000;
    Harness h(o);
    h.run();
    if (HasFatalFailure()) return;
    const auto ops = static_cast<uint64_t>(o.ops);
    EXPECT_GT(h.failed_allocations, 20u);
    EXPECT_GT(h.attached_tokens, 1000u);
    EXPECT_GT(h.rollbacks, ops / 25);
    EXPECT_GT(h.chunked_steps, ops / 50);
    EXPECT_GT(h.refused_truncations, ops / 200);
  }
}

// Every registered format that can serve both roles, on its own and mixed per layer.
TEST(RandomOps, EveryFormatMatchesTheReferenceModel) {
  for (const auto& f : format::all_formats()) {
    const bool k = f.supports(format::Role::K) &&
                   format::why_unsupported(f.id, {format::Role::K, 8, 16, 2, 0}).empty();
    const bool v = f.supports(format::Role::V) &&
                   format::why_unsupported(f.id, {format::Role::V, 16, 16, 2, 0}).empty();
    if (!k && !v) continue;
    const std::string kf = k ? std::string(f.name) : "f16", vf = v ? std::string(f.name) : "f16";
    const std::vector<std::string> policies = {fmt::format("k={},v={}", kf, vf),
                                               fmt::format("k=f32,v=f32;0:k={},v={}", kf, vf)};
    for (const std::string& policy : policies) {
      SCOPED_TRACE(policy);
      Options o;
      o.policy = policy;
      o.ops = 4000;
      o.seed = 11;
      o.hp_window = 5;
      Harness h(o);
      h.run();
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace kvpack::cache
