#include "eval/policy_search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>

#include "base/error.h"

namespace kvpack::eval {

namespace {

// Most DP cells the default resolution may use (items x budget units): 50 MB of choices.
constexpr double kMaxCells = 5e7;

// The largest unit every cost is a whole multiple of, when costs are multiples of 1/1024 (bytes
// per token are: head bytes are multiples of 64, pages hold 16-256 tokens); 0 otherwise. With it
// the DP is exact, and a choice that fills the budget exactly is never rounded out of it.
double common_unit(const std::vector<std::vector<Option>>& items) {
  int64_t g = 0;
  for (const auto& item : items) {
    for (const Option& o : item) {
      const double scaled = o.bytes_per_token * 1024;
      const int64_t r = std::llround(scaled);
      if (std::fabs(scaled - static_cast<double>(r)) > 1e-6 || r < 0) return 0;
      g = std::gcd(g, r);
    }
  }
  return static_cast<double>(g) / 1024;
}

}  // namespace

SearchResult search_min_error(const std::vector<std::vector<Option>>& items, double budget,
                              double resolution) {
  if (items.empty()) return {};
  if (resolution <= 0) {
    const double unit = common_unit(items);
    const double cells = unit > 0 ? budget / unit * static_cast<double>(items.size()) : INFINITY;
    resolution = cells <= kMaxCells ? unit : budget / 20000.0;
  }
  KVPACK_ASSERT(resolution > 0, "budget must be positive");
  const auto units = [&](double bytes) {
    return static_cast<int64_t>(std::ceil(bytes / resolution - 1e-9));
  };
  const int64_t cap = static_cast<int64_t>(std::floor(budget / resolution + 1e-9));
  constexpr double kInf = std::numeric_limits<double>::infinity();

  // best[c]: least error of the items so far with total cost exactly c units.
  std::vector<double> best(static_cast<size_t>(cap + 1), kInf), next;
  best[0] = 0;
  // pick[i][c]: option chosen for item i to reach cost c (for backtracking).
  std::vector<std::vector<uint8_t>> pick(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    KVPACK_ASSERT(!items[i].empty() && items[i].size() < 256, "item {} has {} options", i,
                  items[i].size());
    next.assign(best.size(), kInf);
    pick[i].assign(best.size(), 0);
    for (size_t o = 0; o < items[i].size(); ++o) {
      const int64_t w = units(items[i][o].bytes_per_token);
      for (int64_t c = w; c <= cap; ++c) {
        const double e = best[static_cast<size_t>(c - w)] + items[i][o].error;
        if (e < next[static_cast<size_t>(c)]) {
          next[static_cast<size_t>(c)] = e;
          pick[i][static_cast<size_t>(c)] = static_cast<uint8_t>(o);
        }
      }
    }
    best.swap(next);
  }
  int64_t end = -1;
  for (int64_t c = 0; c <= cap; ++c) {
    if (best[static_cast<size_t>(c)] < kInf &&
        (end < 0 || best[static_cast<size_t>(c)] < best[static_cast<size_t>(end)])) {
      end = c;
    }
  }
  if (end < 0) {
    double cheapest = 0;
    for (const auto& item : items) {
      double m = kInf;
      for (const auto& o : item) m = std::min(m, o.bytes_per_token);
      cheapest += m;
    }
    fail("no policy fits {:.0f} bytes per token: the cheapest choice needs {:.0f}", budget,
         cheapest);
  }
  SearchResult r;
  r.choice.resize(items.size());
  for (size_t i = items.size(); i-- > 0;) {
    const int o = pick[i][static_cast<size_t>(end)];
    r.choice[i] = o;
    r.bytes_per_token += items[i][static_cast<size_t>(o)].bytes_per_token;
    r.error += items[i][static_cast<size_t>(o)].error;
    end -= units(items[i][static_cast<size_t>(o)].bytes_per_token);
  }
  return r;
}

std::vector<std::vector<Option>> search_items(const SensitivityTable& t) {
  KVPACK_ASSERT(t.k_bytes.size() == t.formats.size() && t.v_bytes.size() == t.formats.size());
  std::vector<std::vector<Option>> items;
  for (int l = 0; l < t.n_layers; ++l) {
    for (bool k : {true, false}) {
      const std::vector<double>& bytes = k ? t.k_bytes : t.v_bytes;
      const std::vector<double>& err = (k ? t.k_error : t.v_error)[static_cast<size_t>(l)];
      std::vector<Option> item;
      for (size_t f = 0; f < t.formats.size(); ++f) {
        if (bytes[f] >= 0) item.push_back({t.formats[f], bytes[f], err[f]});
      }
      if (item.empty())
        fail("policy search: no candidate format can hold layer {}'s {}", l, k ? "keys" : "values");
      items.push_back(std::move(item));
    }
  }
  return items;
}

format::KVPolicy policy_from_search(const std::vector<std::vector<Option>>& items,
                                    const SearchResult& result) {
  KVPACK_ASSERT(items.size() % 2 == 0 && result.choice.size() == items.size());
  std::vector<format::FormatId> k, v;
  for (size_t i = 0; i < items.size(); ++i) {
    const format::FormatId f = items[i][static_cast<size_t>(result.choice[i])].format;
    (i % 2 == 0 ? k : v).push_back(f);
  }
  return policy_from_layers(k, v);
}

double predicted_error(const SensitivityTable& t, const format::KVPolicy& policy) {
  double sum = 0;
  for (int l = 0; l < t.n_layers; ++l) {
    const format::LayerFormats lf = policy.layer(l, t.n_layers);
    for (bool k : {true, false}) {
      const format::FormatId want = k ? lf.k : lf.v;
      const auto at = std::find(t.formats.begin(), t.formats.end(), want);
      const size_t f = static_cast<size_t>(at - t.formats.begin());
      if (at == t.formats.end() || (k ? t.k_bytes : t.v_bytes)[f] < 0) return std::nan("");
      sum += (k ? t.k_error : t.v_error)[static_cast<size_t>(l)][f];
    }
  }
  return sum;
}

format::KVPolicy policy_from_layers(const std::vector<format::FormatId>& k,
                                    const std::vector<format::FormatId>& v) {
  KVPACK_ASSERT(k.size() == v.size() && !k.empty());
  std::map<format::FormatId, int> k_count, v_count;
  for (auto f : k) ++k_count[f];
  for (auto f : v) ++v_count[f];
  auto mode = [](const std::map<format::FormatId, int>& m) {
    auto best = m.begin();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    return best->first;
  };
  format::KVPolicy p(mode(k_count), mode(v_count));
  for (const auto& [role_is_k, formats] : {std::pair{true, &k}, std::pair{false, &v}}) {
    const format::FormatId base = role_is_k ? p.base().k : p.base().v;
    std::map<format::FormatId, std::vector<int>> groups;
    for (size_t l = 0; l < formats->size(); ++l) {
      if ((*formats)[l] != base) groups[(*formats)[l]].push_back(static_cast<int>(l));
    }
    for (auto& [f, layers] : groups) {
      format::KVPolicy::Override o;
      o.layers = std::move(layers);
      if (role_is_k) {
        o.k = f;
      } else {
        o.v = f;
      }
      p.add_override(std::move(o));
    }
  }
  return p;
}

}  // namespace kvpack::eval
