// Greedy merging of adjacent symbols, the loop both BPE flavours share (tokenizer_spm.cpp scores
// merged texts, tokenizer_bpe.cpp ranks listed pairs): every adjacent pair the caller can merge
// is queued by priority; the best (leftmost on ties) is merged, its new neighbours queued, until
// none is left. Pairs queued before one of their symbols changed are skipped as stale.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace kvpack::model {

// One symbol of the text being merged: its bytes [start, start + length) and their token.
struct MergeSymbol {
  uint32_t start;
  uint32_t length;  // 0 once merged into its left neighbour
  int32_t id;       // the token, or kNoToken (a character no token covers)
  int32_t prev = -1;
  int32_t next = -1;  // -1 at either end
};

// What merging a pair gives: the merged token, and its priority (higher first).
struct PairMerge {
  double priority;
  int32_t id;
};

// Links `symbols` (in text order) and merges them; `merge(left, right)` returns the PairMerge
// of two adjacent symbols, or nullopt when they do not merge. Afterwards symbols 0, next, ...
// are the result.
template <typename Merge>
void merge_pairs(std::vector<MergeSymbol>& symbols, Merge merge) {
  struct Bigram {
    int32_t left;
    int32_t right;
    uint32_t length;  // left + right length when queued; stale once either symbol changed
    PairMerge merge;
    bool operator<(const Bigram& o) const {
      return merge.priority < o.merge.priority ||
             (merge.priority == o.merge.priority && left > o.left);
    }
  };
  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i].prev = i - 1;
    symbols[i].next = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Bigram> queue;
  const auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    if (const std::optional<PairMerge> m = merge(symbols[left], symbols[right])) {
      queue.push({left, right, symbols[left].length + symbols[right].length, *m});
    }
  };
  for (int32_t i = 1; i < n; ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    MergeSymbol& left = symbols[b.left];
    MergeSymbol& right = symbols[b.right];
    // Symbols only grow (by taking their right neighbour), so a changed one has a new length.
    if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
    left.id = b.merge.id;
    left.length = b.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }
}

}  // namespace kvpack::model
