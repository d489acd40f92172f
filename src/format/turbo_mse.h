// The TurboQuant MSE quantizer shared by turbo2/3/4 and the MSE part of the QJL key formats:
// per KV head a random rotation Pi (rotation.h), one Lloyd-Max codebook c for (head dim, bits)
// (codebook.h), and a norm-corrected f16 scale per token.
//
//   encode:  u = Pi x / ||x||,  idx_j = nearest centroid of u_j,  stored = ||x|| / ||c[idx]||
//   decode:  x~ = stored * Pi^T c[idx]     (so ||x~|| = ||x||, up to f16 rounding of `stored`)
//
// Input saturation (documented in docs/formats.md): NaN -> 0 and values beyond +-65504 (f16's
// largest finite value, including +-Inf) -> +-65504 before the norm is taken; a stored norm
// beyond 65504 saturates there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/codebook.h"
#include "format/rotation.h"
#include "kvpack/format.h"

namespace kvpack::format {

inline constexpr int kTurboMinDim = 8;
inline constexpr int kTurboMaxDim = 256;

// Empty when TurboQuant can serve the geometry, else why not (head dim multiple of 8, 8..256).
std::string turbo_geometry_problem(const CodecConfig& config);

// out: [n] = x with NaN -> 0 and values clamped to +-65504.
void saturate_to_f16_range(const float* x, int n, float* out);

class TurboMse {
 public:
  // One rotation per KV head, seeded from (seed, head); bits of the codes in 1..4.
  TurboMse(int head_dim, int bits, int n_heads, uint64_t seed);

  int head_dim() const { return dim_; }
  const Codebook& codebook() const { return cb_; }
  const Rotation& rotation(int head) const { return rotations_[head]; }

  // Quantizes one token x: [d] (already saturated). idx: [d] codes; returns the stored norm in
  // f16 bits. A zero vector stores norm 0 (and fixed codes), so it decodes to exact zeros.
  uint16_t quantize(int head, const float* x, uint8_t* idx) const;
  // z: [d] = stored * c[idx], the reconstruction in the rotated basis.
  void reconstruct_rotated(uint16_t stored, const uint8_t* idx, float* z) const;
  // out: [d] = Pi^T reconstruct_rotated(...), the reconstruction in the original basis.
  void reconstruct(int head, uint16_t stored, const uint8_t* idx, float* out) const;
  // sum_j qp_j c[idx_j] in double (qp: [d] rotated query); the caller scales by the norm.
  double dot_codes(const float* qp, const uint8_t* idx) const;

 private:
  int dim_;
  const Codebook& cb_;
  std::vector<Rotation> rotations_;  // [n_heads]
};

}  // namespace kvpack::format
