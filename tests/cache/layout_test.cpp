// The page arithmetic (PageLayout) on its own: how layers are grouped and laid out in a page for
// the model shapes kvpack plans for, and the figures it gives (held, step and peak pages, the
// longest sequence a budget holds). tests/cache/window_test.cpp checks the same figures against
// what a real cache takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "cache_test_util.h"

namespace kvpack::cache {
namespace {

// Gemma's pattern: layer l slides unless l % period == period - 1.
std::vector<LayerPages> gemma_layers(int n_layers, int period, int window, uint64_t slice = 1024) {
  std::vector<LayerPages> out(static_cast<size_t>(n_layers));
  for (int l = 0; l < n_layers; ++l) {
    out[l] = {slice, slice, l % period == period - 1 ? 0 : window, 64};
  }
  return out;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

TEST(PageLayout, EveryLayerFullIsOneGroup) {
  std::vector<LayerPages> layers(4, LayerPages{512, 1024, 0, 10});
  const PageLayout l = page_layout(layers, 32, 0);
  ASSERT_EQ(l.groups.size(), 1u);
  EXPECT_EQ(l.groups[0].layers, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(l.page_bytes, 4u * 1536);
  EXPECT_EQ(l.staging_bytes, 4u * 10 * 32);
  EXPECT_EQ(l.sequence_pages(0), 0u);
  EXPECT_EQ(l.sequence_pages(1), 1u);
  EXPECT_EQ(l.sequence_pages(33), 2u);
  EXPECT_EQ(l.sequence_bytes(64), 2 * l.page_bytes + l.staging_bytes);
}

TEST(PageLayout, Gemma3GroupsFiveSlidingToOneFull) {
  // Gemma 3 12B: 48 layers, 8 global; groups of 8 layers, none padded.
  PageLayout l = page_layout(gemma_layers(48, 6, 1024), 32, 0);
  ASSERT_EQ(l.groups.size(), 6u);
  EXPECT_EQ(l.groups[0].window, 0);
  EXPECT_EQ(l.groups[0].layers, (std::vector<int>{5, 11, 17, 23, 29, 35, 41, 47}));
  EXPECT_EQ(l.groups[1].layers, (std::vector<int>{0, 1, 2, 3, 4, 6, 7, 8}));
  for (size_t g = 1; g < 6; ++g) {
    EXPECT_EQ(l.groups[g].window, 1024);
    EXPECT_EQ(l.groups[g].layers.size(), 8u);
    EXPECT_EQ(l.group_slice_bytes(g), l.page_bytes);
  }
  EXPECT_EQ(l.page_bytes, 8u * 2048);
  // A sliding group holds ceil(W / P) + 1 pages at most between steps.
  EXPECT_EQ(l.groups[1].max_held, 33u);
  // Gemma 3 4B: 34 layers, 5 global: six sliding groups of five, the last with four (one slot
  // of padding in its pages).
  l = page_layout(gemma_layers(34, 6, 1024), 32, 0);
  ASSERT_EQ(l.groups.size(), 7u);
  EXPECT_EQ(l.groups[6].layers, (std::vector<int>{30, 31, 32, 33}));
  EXPECT_EQ(l.group_slice_bytes(6), l.page_bytes / 5 * 4);
  // The fixtures' shape: 6 layers, 1 global: groups of one layer each.
  l = page_layout(gemma_layers(6, 6, 64), 32, 0);
  EXPECT_EQ(l.groups.size(), 6u);
  EXPECT_EQ(l.slots(), 1);
}

TEST(PageLayout, Gemma2AlternatesInTwoGroups) {
  const PageLayout l = page_layout(gemma_layers(42, 2, 4096), 32, 0);
  ASSERT_EQ(l.groups.size(), 2u);
  EXPECT_EQ(l.groups[0].layers.size(), 21u);
  EXPECT_EQ(l.groups[1].layers.size(), 21u);
  EXPECT_EQ(l.layer_group[0], 1);
  EXPECT_EQ(l.layer_group[1], 0);
}

TEST(PageLayout, MixedFormatsLineUpLargestSlicesFirst) {
  // Layer 0 (sliding) and layer 3 (full) are wide; the groups order them first, so the wide
  // slices share slot 0 and the page pads nothing.
  std::vector<LayerPages> layers = {
      {4096, 4096, 64, 1}, {1024, 1024, 64, 1}, {1024, 1024, 0, 1}, {4096, 4096, 0, 1}};
  const PageLayout l = page_layout(layers, 32, 0);
  ASSERT_EQ(l.groups.size(), 2u);
  EXPECT_EQ(l.groups[0].layers, (std::vector<int>{3, 2}));
  EXPECT_EQ(l.groups[1].layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(l.page_bytes, 2u * (4096 + 1024));
  EXPECT_EQ(l.layer_slot[3], 0);
  EXPECT_EQ(l.layer_slot[2], 1);
}

TEST(PageLayout, LayersWithoutKvTakeNoSlot) {
  std::vector<LayerPages> layers = {{512, 512, 0, 1}, {0, 0, 0, 0}, {512, 512, 0, 1}};
  const PageLayout l = page_layout(layers, 16, 0);
  EXPECT_EQ(l.layer_group[1], -1);
  EXPECT_EQ(l.page_bytes, 2048u);
  EXPECT_NE(testing::error_of([] {
              page_layout(std::vector<LayerPages>(2), 16, 0);
            }).find("no layer holds K/V"),
            std::string::npos);
}

// held_pages against its definition; step and peak pages against a direct maximum over every
// starting length, for windows, page sizes, high-precision windows and chunks.
TEST(PageLayout, FiguresMatchTheirDefinitions) {
  for (int P : {16, 32}) {
    for (int W : {1, 20, 64, 100}) {
      for (int H : {0, 7, 50, 130}) {
        std::vector<LayerPages> layers = {{64, 64, W, 1}, {64, 64, 0, 1}};
        const PageLayout l = page_layout(layers, P, H);
        const size_t g = static_cast<size_t>(l.layer_group[0]);
        uint64_t most = 0;
        for (int64_t n = 0; n < 600; ++n) {
          const int64_t d = std::max<int64_t>(0, (n - W + 1 + 1000 * P) / P - 1000);
          const int64_t e = std::max<int64_t>(0, (n - H + 1000 * P) / P - 1000);
          ASSERT_EQ(l.held_pages(g, n), static_cast<uint64_t>(ceil_div(n, P) - std::min(d, e)));
          most = std::max(most, l.held_pages(g, n));
        }
        EXPECT_EQ(l.groups[g].max_held, most) << P << " " << W << " " << H;
        for (int m : {1, 8, 40}) {
          for (int64_t n = 0; n < 500; n += 7) {
            uint64_t want = 0;
            for (int64_t n0 = 0; n0 <= n; ++n0) want = std::max(want, l.step_pages(g, n0, n, m));
            ASSERT_EQ(l.peak_pages(g, n, m), want) << P << " " << W << " " << H << " " << m;
            ASSERT_EQ(l.peak_pages(1 - g, n, m), static_cast<uint64_t>(ceil_div(n, P)));
          }
        }
      }
    }
  }
}

TEST(PageLayout, MaxTokensIsTheLongestThatFits) {
  const PageLayout l = page_layout(gemma_layers(12, 6, 256, 512), 32, 0);
  for (uint64_t bytes : {0ull, 100ull, 5000ull, 100000ull, 3000000ull}) {
    const int64_t n = l.max_tokens(bytes);
    if (bytes < l.staging_bytes) {
      EXPECT_EQ(n, 0);
      continue;
    }
    ASSERT_GE(n, 0);
    EXPECT_EQ(n % 32, 0);
    EXPECT_LE(l.sequence_bytes(n), bytes);
    EXPECT_GT(l.sequence_bytes(n + 32), bytes);
  }
  // Every layer slides: once the window and a step's ring fit, any length does.
  std::vector<LayerPages> sliding(4, LayerPages{512, 512, 256, 8});
  const PageLayout s = page_layout(sliding, 32, 0);
  const uint64_t settled = s.sequence_bytes(1 << 20);
  EXPECT_EQ(s.sequence_bytes(1 << 16), settled);
  EXPECT_EQ(s.max_tokens(settled), -1);
  EXPECT_GT(s.max_tokens(settled - 1), 0);
  // Without a chunk, a step keeps every page: sliding layers save nothing at the peak.
  EXPECT_EQ(s.sequence_pages(4096, 0), 4096u / 32 * 1);
}

}  // namespace
}  // namespace kvpack::cache
