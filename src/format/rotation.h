// The random rotation TurboQuant applies before quantizing: random +-1 sign flips, each followed
// by a normalized Walsh-Hadamard transform (a "randomized Hadamard", RH), for any dimension.
//
// Power-of-two d: one round is RH on all d coordinates.
// Other d: write d as a sum of distinct powers of two P0 > P1 > ... > Pk (its binary digits),
// laid out as consecutive blocks [0,P0), [P0,P0+P1), ... One round flattens the blocks from the
// smallest up: RH(Pk); then for i = k-1 .. 0, with n1 = Pi and the tail T = blocks i+1..k
// (n2 = |T| < n1): RH(block i); rotate each pair (block i's t-th coordinate, T's t-th) by the
// Givens angle with sin^2 = n1 / (n1 + n2); RH(block i) again.
// Why this angle: after an RH every coordinate of a block has the same expected energy
// (E[y_j^2] = |v|^2 / n for any v, by the random signs), so with e1, e2 the per-coordinate
// energies of block i and the tail, the Givens step and the second RH leave
//   block i: e1 + (n2/n1) s^2 (e2 - e1),   tail: e2 + s^2 (e1 - e2),
// which are equal exactly when s^2 = n1/(n1+n2). By induction every output coordinate has
// expected energy |x|^2 / d for every input x, as the sphere marginal does.
//
// Two rounds with independent signs make each coordinate a random-signed sum of many terms even
// for a spike input (one round maps e_j to +-1/sqrt(d) on every coordinate), so coordinates
// follow the sphere marginal closely (tests/format/rotation_test.cpp checks both).
// Every step is orthogonal, so the whole map is; cost <= 2 rounds x 2 d log2 d additions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvpack::format {

class Rotation {
 public:
  static constexpr int kRounds = 2;
  static constexpr int kMaxDim = 1 << 16;

  // dim in [1, kMaxDim]; the same (dim, seed) always gives the same rotation.
  Rotation(int dim, uint64_t seed);

  int dim() const { return dim_; }
  // y = Pi x. x, y: [dim]; may be the same buffer.
  void forward(const float* x, float* y) const;
  // x = Pi^T y, the exact inverse (up to float rounding). y, x: [dim]; may be the same buffer.
  void inverse(const float* y, float* x) const;

 private:
  // One orthogonal step acting on part of the vector.
  struct Step {
    enum Kind : uint8_t { kHadamard, kGivens } kind;
    int offset;    // kHadamard: block start; kGivens: first coordinate of block i
    int size;      // kHadamard: block length (a power of two); kGivens: pairs (tail length n2)
    int partner;   // kGivens: first coordinate of the tail; unused for kHadamard
    size_t signs;  // kHadamard: offset of this step's +-1 signs in signs_
    float c, s;    // kGivens: cos and sin of the angle
  };

  void add_round(uint64_t seed);
  void add_hadamard(int offset, int size, uint64_t seed);

  int dim_;
  std::vector<Step> steps_;   // applied in order by forward(), reversed by inverse()
  std::vector<float> signs_;  // +-1.0f, concatenated per Hadamard step
};

// In-place normalized Walsh-Hadamard transform of x: [n], n a power of two (self-inverse):
// the best SIMD target's (format/hadamard.cpp), bit-exact with the scalar reference below.
void walsh_hadamard(float* x, int n);
// The same one butterfly stage at a time (h = 1, 2, 4, ...), then the 1/sqrt(n) scale.
void walsh_hadamard_reference(float* x, int n);

}  // namespace kvpack::format
