// Benchmark support: time one-layer decode calls for a K/V pair at one context, beside an
// in-process read-bandwidth measurement and (optionally) the dequantize-to-f16 baseline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "attention/bench/synthetic.h"
#include "base/read_bandwidth.h"
#include "base/thread_pool.h"
#include "kvpack/format.h"

namespace kvpack::attention::bench {

struct MeasureConfig {
  Shape shape;
  int64_t context = 32768;
  size_t working_set = size_t{1} << 30;  // bytes of pages the calls cycle through
  double min_seconds = 0.5;              // per measurement (at least 3 rounds over the layers)
  bool baseline = true;                  // also time the dequantize-to-f16 baseline
  bool codec_ops = false;                // force the codecs' generic role operations
  bool shuffle_pages = false;            // scattered page ids (a fragmented pool)
};

struct Measurement {
  format::FormatId k = format::FormatId::f16;
  format::FormatId v = format::FormatId::f16;
  int64_t context = 0;
  std::string k_kernel, v_kernel;
  int layers = 0;             // distinct layers cycled through
  size_t bytes_per_call = 0;  // K and V codes + scales + norms of one layer, and its tail
  double us_per_call = 0;     // median over rounds
  double us_min = 0;          // fastest round
  double bandwidth = 0;       // bytes/s, read probe right before and after (the higher)
  // The same in process CPU time divided by the thread count (what an idle machine would show;
  // on a shared one, other processes' time slices stay out of it).
  double cpu_us_per_call = 0;  // median over rounds
  double cpu_bandwidth = 0;    // bytes/s of the probe in the same measure
  double baseline_us = 0;      // dequantize + f16 attend per call; 0 when not measured
};

Measurement measure_pair(format::FormatId k, format::FormatId v, const MeasureConfig& config,
                         ThreadPool& pool, const ReadProbe& probe);

}  // namespace kvpack::attention::bench
