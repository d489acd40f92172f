// The residency report (where the arena's pages are, counters) and the diagnostics tests use.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "base/error.h"
#include "base/table.h"
#include "base/units.h"
#include "cache/cache_state.h"

namespace kvpack::cache {

Residency Cache::residency() const {
  const State& s = *s_;
  std::shared_lock world(s.world);
  std::lock_guard lock(s.pool_mutex);
  Residency r;
  r.page_tokens = s.page_tokens();
  r.page_bytes = s.arena->page_bytes();
  for (const PageGroup& g : s.layout.groups) {
    GroupResidency gr;
    gr.window = g.window;
    gr.layers = g.layers;
    r.groups.push_back(std::move(gr));
  }
  const PagePool& pool = *s.pool;
  for (uint32_t id = 0; id < pool.capacity(); ++id) {
    const uint32_t refs = pool.refcount(id);
    GroupResidency& gr = r.groups[s.page_group[id]];
    if (refs == 1) {
      ++r.active.pages;
      ++gr.active.pages;
    } else if (refs > 1) {
      ++r.shared.pages;
      ++gr.shared.pages;
      r.shared_holders += refs;
    } else if (pool.hashed(id)) {
      ++gr.cached.pages;
    }
  }
  r.reserved.pages = pool.capacity();
  r.cached.pages = pool.cached_pages();
  r.free.pages = pool.free_pages();
  r.peak.pages = pool.peak_used();
  r.touched_bytes = static_cast<uint64_t>(pool.touched()) * r.page_bytes;
  std::unordered_set<const Staging*> stagings;
  for (const auto& q : s.seqs) {
    if (!q) continue;
    ++r.sequences;
    r.tokens += q->tokens.size();
    for (size_t g = 0; g < q->groups.size(); ++g) {
      const auto& pages = q->groups[g].pages;
      const auto released = static_cast<uint64_t>(std::count(pages.begin(), pages.end(), kNoPage));
      r.groups[g].released.pages += released;
      r.groups[g].max_sequence_pages =
          std::max<uint64_t>(r.groups[g].max_sequence_pages, pages.size() - released);
      r.tail_unused_slots += pages.size() * static_cast<uint64_t>(r.page_tokens) - q->tokens.size();
    }
    stagings.insert(q->staging.get());
    if (q->step && q->step->displaced_staging) stagings.insert(q->step->displaced_staging.get());
  }
  for (PageBytes* pb : {&r.reserved, &r.active, &r.shared, &r.cached, &r.free, &r.peak}) {
    pb->bytes = pb->pages * r.page_bytes;
  }
  for (GroupResidency& gr : r.groups) {
    for (PageBytes* pb : {&gr.active, &gr.shared, &gr.cached, &gr.released}) {
      pb->bytes = pb->pages * r.page_bytes;
    }
  }
  r.staging_bytes = stagings.size() * s.staging_floats * sizeof(float);
  r.counters = s.counters;
  r.counters.evictions = pool.evictions();
  r.counters.appended_tokens = s.appended_tokens.load(std::memory_order_relaxed);
  r.counters.append_ns = s.append_ns.load(std::memory_order_relaxed);
  r.counters.encoded_pages = s.encoded_pages.load(std::memory_order_relaxed);
  r.counters.encode_ns = s.encode_ns.load(std::memory_order_relaxed);
  return r;
}

double Residency::prefix_hit_rate() const {
  const uint64_t asked = counters.prefix_hit_tokens + counters.prefix_miss_tokens;
  return asked == 0 ? 0.0 : static_cast<double>(counters.prefix_hit_tokens) / asked;
}

namespace {

// "0-4,6-10": the layers of a group, in layer order.
std::string layer_ranges(std::vector<int> layers) {
  std::sort(layers.begin(), layers.end());
  std::string out;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    out += fmt::format("{}{}", out.empty() ? "" : ",", layers[i]);
    if (j > i) out += fmt::format("-{}", layers[j]);
    i = j + 1;
  }
  return out;
}

std::string group_kind(int window) {
  return window == 0 ? std::string("full") : fmt::format("sliding {}", window);
}

// One row per page group: what it holds, caches and (sliding) has released.
std::string group_table(const Residency& r) {
  Table t({"group", "attention", "layers", "active", "shared", "cached", "released (saved)",
           "max pages/seq"});
  t.align_left(1);
  t.align_left(2);
  for (size_t g = 0; g < r.groups.size(); ++g) {
    const GroupResidency& gr = r.groups[g];
    t.add_row({std::to_string(g), group_kind(gr.window), layer_ranges(gr.layers),
               std::to_string(gr.active.pages), std::to_string(gr.shared.pages),
               std::to_string(gr.cached.pages),
               fmt::format("{} ({})", gr.released.pages,
                           format_bytes(static_cast<double>(gr.released.bytes))),
               std::to_string(gr.max_sequence_pages)});
  }
  return t.to_text();
}

}  // namespace

std::string Residency::to_table() const {
  Table t({"pages", "count", "bytes", "share"});
  t.align_left(0);
  const auto row = [&](const char* name, const PageBytes& pb) {
    const double share = reserved.pages == 0 ? 0 : 100.0 * pb.pages / reserved.pages;
    t.add_row({name, std::to_string(pb.pages), format_bytes(static_cast<double>(pb.bytes)),
               fmt::format("{:.1f}%", share)});
  };
  row("reserved", reserved);
  t.add_separator();
  row("active", active);
  row("shared", shared);
  row("cached", cached);
  row("free", free);
  t.add_separator();
  row("peak held", peak);
  std::string out =
      fmt::format("kv cache residency (page: {} tokens, {} across {})\n", page_tokens,
                  format_bytes(static_cast<double>(page_bytes)),
                  groups.size() > 1 ? fmt::format("a group's layers, {} groups", groups.size())
                                    : std::string("all layers"));
  out += t.to_text();
  if (groups.size() > 1 || (groups.size() == 1 && groups[0].window > 0)) {
    out += fmt::format("page groups (pages; a sliding group releases pages behind its window):\n");
    out += group_table(*this);
  }
  const uint64_t slots = (active.pages + shared.pages) * static_cast<uint64_t>(page_tokens);
  out += fmt::format(
      "shared pages have {} holders: sharing saves {}\n"
      "{} sequences, {} tokens; {} unused token slots in tail pages ({:.1f}% of held slots)\n"
      "staging (f32 tails, outside the arena): {}; arena touched: {}\n",
      shared_holders, format_bytes(static_cast<double>(shared_saved_bytes())), sequences, tokens,
      tail_unused_slots, slots == 0 ? 0.0 : 100.0 * tail_unused_slots / slots,
      format_bytes(static_cast<double>(staging_bytes)),
      format_bytes(static_cast<double>(touched_bytes)));
  const CacheCounters& c = counters;
  out += fmt::format(
      "prefix: {} tokens hit, {} missed ({:.1f}% hit rate); evictions {}; compactions {} ({} "
      "pages moved); copy-on-writes {}; released {}\n",
      c.prefix_hit_tokens, c.prefix_miss_tokens, 100.0 * prefix_hit_rate(), c.evictions,
      c.compactions, c.pages_moved, c.copy_on_writes,
      format_bytes(static_cast<double>(c.bytes_released)));
  return out;
}

std::string Residency::to_json(int indent) const {
  using nlohmann::ordered_json;
  const auto pb = [](const PageBytes& p) {
    return ordered_json{{"pages", p.pages}, {"bytes", p.bytes}};
  };
  ordered_json groups_json = ordered_json::array();
  for (const GroupResidency& g : groups) {
    groups_json.push_back({{"window", g.window},
                           {"layers", g.layers},
                           {"active", pb(g.active)},
                           {"shared", pb(g.shared)},
                           {"cached", pb(g.cached)},
                           {"released", pb(g.released)},
                           {"max_sequence_pages", g.max_sequence_pages}});
  }
  const CacheCounters& c = counters;
  ordered_json j = {
      {"page_tokens", page_tokens},
      {"page_bytes", page_bytes},
      {"reserved", pb(reserved)},
      {"active", pb(active)},
      {"shared", pb(shared)},
      {"cached", pb(cached)},
      {"free", pb(free)},
      {"peak", pb(peak)},
      {"groups", groups_json},
      {"shared_holders", shared_holders},
      {"shared_saved_bytes", shared_saved_bytes()},
      {"touched_bytes", touched_bytes},
      {"sequences", sequences},
      {"tokens", tokens},
      {"tail_unused_slots", tail_unused_slots},
      {"staging_bytes", staging_bytes},
      {"counters",
       {{"prefix_hit_tokens", c.prefix_hit_tokens},
        {"prefix_miss_tokens", c.prefix_miss_tokens},
        {"prefix_hit_rate", prefix_hit_rate()},
        {"evictions", c.evictions},
        {"compactions", c.compactions},
        {"pages_moved", c.pages_moved},
        {"copy_on_writes", c.copy_on_writes},
        {"bytes_released", c.bytes_released},
        {"appended_tokens", c.appended_tokens},
        {"append_ns", c.append_ns},
        {"encoded_pages", c.encoded_pages},
        {"encode_ns", c.encode_ns}}},
  };
  return j.dump(indent);
}

}  // namespace kvpack::cache
