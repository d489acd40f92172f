// Randomized Hadamard rotation for any dimension; the method is described in rotation.h.
#include "format/rotation.h"

#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/rng.h"

namespace kvpack::format {

void walsh_hadamard_reference(float* x, int n) {
  for (int h = 1; h < n; h *= 2) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        const float a = x[j];
        const float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int i = 0; i < n; ++i) x[i] *= scale;
}

Rotation::Rotation(int dim, uint64_t seed) : dim_(dim) {
  if (dim < 1 || dim > kMaxDim) {
    fail("rotation dimension {} is out of range (expected 1..{})", dim, kMaxDim);
  }
  for (int r = 0; r < kRounds; ++r)
    add_round(mix_seed(seed, 0x726f74ull, static_cast<uint64_t>(r)));
}

void Rotation::add_hadamard(int offset, int size, uint64_t seed) {
  Step step{};
  step.kind = Step::kHadamard;
  step.offset = offset;
  step.size = size;
  step.signs = signs_.size();
  Rng rng(seed);
  for (int i = 0; i < size; ++i) signs_.push_back(rng.coin() ? -1.0f : 1.0f);
  steps_.push_back(step);
}

void Rotation::add_round(uint64_t seed) {
  // Blocks = binary digits of dim, largest first: (offset, size).
  std::vector<std::pair<int, int>> blocks;
  int offset = 0;
  for (int bit = 30; bit >= 0; --bit) {
    if (dim_ & (1 << bit)) {
      blocks.emplace_back(offset, 1 << bit);
      offset += 1 << bit;
    }
  }
  uint64_t step_index = 0;
  const auto hadamard = [&](int i) {
    add_hadamard(blocks[i].first, blocks[i].second, mix_seed(seed, ++step_index));
  };
  const int k = static_cast<int>(blocks.size()) - 1;
  hadamard(k);
  for (int i = k - 1; i >= 0; --i) {
    const int tail = blocks[i + 1].first;
    const double n1 = blocks[i].second;
    const double n2 = dim_ - tail;
    hadamard(i);
    Step g{};
    g.kind = Step::kGivens;
    g.offset = blocks[i].first;
    g.size = dim_ - tail;
    g.partner = tail;
    g.c = static_cast<float>(std::sqrt(n2 / (n1 + n2)));
    g.s = static_cast<float>(std::sqrt(n1 / (n1 + n2)));
    steps_.push_back(g);
    hadamard(i);
  }
}

void Rotation::forward(const float* x, float* y) const {
  if (y != x) std::memcpy(y, x, sizeof(float) * static_cast<size_t>(dim_));
  for (const Step& st : steps_) {
    if (st.kind == Step::kHadamard) {
      float* v = y + st.offset;
      const float* sg = signs_.data() + st.signs;
      for (int i = 0; i < st.size; ++i) v[i] *= sg[i];
      walsh_hadamard(v, st.size);
    } else {
      for (int t = 0; t < st.size; ++t) {
        const float a = y[st.offset + t];
        const float b = y[st.partner + t];
        y[st.offset + t] = st.c * a - st.s * b;
        y[st.partner + t] = st.s * a + st.c * b;
      }
    }
  }
}

void Rotation::inverse(const float* y, float* x) const {
  if (x != y) std::memcpy(x, y, sizeof(float) * static_cast<size_t>(dim_));
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    const Step& st = *it;
    if (st.kind == Step::kHadamard) {
      float* v = x + st.offset;
      walsh_hadamard(v, st.size);  // H is symmetric and orthonormal: its own inverse
      const float* sg = signs_.data() + st.signs;
      for (int i = 0; i < st.size; ++i) v[i] *= sg[i];
    } else {
      for (int t = 0; t < st.size; ++t) {
        const float a = x[st.offset + t];
        const float b = x[st.partner + t];
        x[st.offset + t] = st.c * a + st.s * b;
        x[st.partner + t] = -st.s * a + st.c * b;
      }
    }
  }
}

}  // namespace kvpack::format
