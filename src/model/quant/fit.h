// Internal to src/model: least-squares scale searches for kvpack's own quantizers of the K-quant
// and IQ4 types (ggml's are iterative searches whose bytes only a line-by-line port reproduces;
// these aim at the same reconstruction error, which tests/model/quant_ref_test.cpp compares with
// ggml's). Each tries a small set of scales around the one that maps the largest value onto the
// grid's end, assigns every value to its nearest level, refits the scale (and min) by least
// squares for that assignment, and keeps the fit with the smallest squared error.
#pragma once

#include <cstdint>

namespace kvpack::model::codec {

// x[n] ~ d * grid[level[j]] for a sorted grid of n_levels values. Returns d (0 for a zero block).
float fit_grid(const float* x, int n, const int8_t* grid, int n_levels, uint8_t* level);
// The nearest level of each x[j] / d (level 0 .. n_levels - 1; all at the level nearest 0 when d
// is 0).
void assign_grid(const float* x, int n, float d, const int8_t* grid, int n_levels, uint8_t* level);

// x[n] ~ d * l[j] with integer l in [lo, hi] (lo < 0 < hi). Returns d (signed; 0 for a zero
// block).
float fit_signed(const float* x, int n, int lo, int hi, int8_t* l);

// x[n] ~ d * l[j] - m with l in [0, nmax], d >= 0 and m >= 0 (the K-quants' min is at most 0).
// Returns d and sets m; d = 0 when every value is the same non-positive number (then x = -m).
float fit_affine(const float* x, int n, int nmax, float* m, uint8_t* l);

}  // namespace kvpack::model::codec
