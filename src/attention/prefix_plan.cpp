#include "attention/prefix_plan.h"

#include <algorithm>

namespace kvpack::attention::detail {
namespace {

// Sequences that could share: same released-page count and same first page.
bool same_start(const cache::LayerView& a, const cache::LayerView& b) {
  return a.first_page == b.first_page && a.page_ids[0] == b.page_ids[0];
}

// Pages page_ids[0, n) that every member holds with the same ids.
size_t common_pages(std::span<const cache::LayerView> views, std::span<const int64_t> members) {
  const std::span<const uint32_t> first = views[static_cast<size_t>(members[0])].page_ids;
  size_t n = first.size();
  for (const int64_t m : members.subspan(1)) {
    const std::span<const uint32_t> ids = views[static_cast<size_t>(m)].page_ids;
    n = std::min(n, ids.size());
    n = static_cast<size_t>(
        std::mismatch(first.begin(), first.begin() + static_cast<ptrdiff_t>(n), ids.begin()).first -
        first.begin());
  }
  return n;
}

}  // namespace

void PrefixPlan::build(std::span<const cache::LayerView> views, int group, bool share) {
  members.clear();
  units.clear();
  seqs.assign(views.size(), SeqShare{});
  max_rows = 0;
  if (!share || views.size() < 2) return;
  // Sequences with pages, ordered so that those sharing a start are adjacent.
  for (size_t i = 0; i < views.size(); ++i) {
    if (!views[i].page_ids.empty()) members.push_back(static_cast<int64_t>(i));
  }
  std::sort(members.begin(), members.end(), [&](int64_t a, int64_t b) {
    const cache::LayerView& va = views[static_cast<size_t>(a)];
    const cache::LayerView& vb = views[static_cast<size_t>(b)];
    if (va.first_page != vb.first_page) return va.first_page < vb.first_page;
    if (va.page_ids[0] != vb.page_ids[0]) return va.page_ids[0] < vb.page_ids[0];
    return a < b;
  });
  const int n_kv = views[0].n_kv_heads;
  const int chunk_max = std::max(1, kSharedItemRows / group);
  size_t b = 0;
  while (b < members.size()) {
    size_t e = b + 1;
    const cache::LayerView& vb = views[static_cast<size_t>(members[b])];
    while (e < members.size() && same_start(vb, views[static_cast<size_t>(members[e])])) ++e;
    const std::span<const int64_t> run(members.data() + b, e - b);
    if (run.size() >= 2) {
      const size_t pages = common_pages(views, run);
      const int n_run = static_cast<int>(run.size());
      const int chunk = std::min(chunk_max, n_run);
      const int per = std::clamp(kSharedItemRows / (chunk * group), 1, n_kv);
      for (int c0 = 0; c0 < n_run; c0 += chunk) {
        const int n_seqs = std::min(chunk, n_run - c0);
        const auto unit0 = static_cast<int64_t>(units.size());
        for (int h0 = 0; h0 < n_kv; h0 += per) {
          const int n_heads = std::min(per, n_kv - h0);
          units.push_back({pages, static_cast<int>(b) + c0, n_seqs, h0, n_heads});
          max_rows = std::max(max_rows, n_heads * n_seqs * group);
        }
        for (int s = 0; s < n_seqs; ++s) {
          seqs[static_cast<size_t>(run[static_cast<size_t>(c0 + s)])] = {pages, unit0, s, n_seqs,
                                                                         per};
        }
      }
    }
    b = e;
  }
}

}  // namespace kvpack::attention::detail
