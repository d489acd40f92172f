// The accuracy of the value kernels' integer weights (Params::exact_value_weights = false, the
// default) against the f32-weights path and against each format's own error, on softmax weight
// distributions from flat to peaked. The default is only allowed where the integer weights'
// error stays within the format's own: this test holds every format with integer weights to it
// and prints the table docs/results.md quotes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kvpack/attention.h"
#include "paged_kv.h"

namespace kvpack::attention {
namespace {

using format::FormatId;
using testing::Data;
using testing::KvShape;
using testing::PagedKv;

struct Dist {
  const char* name;
  Data data;
  double temperature;  // query scale: logits spread ~ temperature (keys ~ N(0, 1))
};

double rel(const std::vector<float>& a, const std::vector<float>& b,
           const std::vector<float>& ref) {
  double e = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    r += double(ref[i]) * ref[i];
  }
  return std::sqrt(e / r);
}

TEST(ValueWeights, IntegerWeightsStayWithinTheFormatsOwnError) {
  const Dist dists[] = {{"flat (logit sd 0.3)", Data::gaussian, 0.3},
                        {"typical (sd 1.5)", Data::gaussian, 1.5},
                        {"wide (sd 3)", Data::gaussian, 3.0},
                        {"outlier keys", Data::outliers, 1.0},
                        {"sink token", Data::sink, 1.0}};
  const KvShape shape{2, 128, 128, 32, 4096, 0};
  const int n_q = 8;
  ThreadPool pool(2);
  std::printf("%-8s %-20s %12s %12s %12s %8s\n", "V", "weights", "format err", "int-w err",
              "f32-w err", "ratio");
  for (FormatId v : {FormatId::q8, FormatId::q4, FormatId::q4a, FormatId::turbo2, FormatId::turbo3,
                     FormatId::turbo4}) {
    for (const Dist& dist : dists) {
      const PagedKv exact(FormatId::f32, FormatId::f32, shape, dist.data, 7);
      const PagedKv kv(FormatId::f32, v, shape, dist.data, 7);
      std::vector<float> q = kv.queries(1, n_q, 3);
      for (auto& x : q) x = static_cast<float>(x * dist.temperature);
      const size_t n = static_cast<size_t>(n_q) * shape.head_dim_v;
      std::vector<float> truth(n), ref(n), int_w(n), f32_w(n);
      reference(exact.view(), q.data(), 1, n_q, truth.data(), Params{});
      reference(kv.view(), q.data(), 1, n_q, ref.data(), Params{});
      Workspace ws;
      Params p;
      decode(kv.view(), q.data(), n_q, int_w.data(), p, pool, ws);
      p.exact_value_weights = true;
      decode(kv.view(), q.data(), n_q, f32_w.data(), p, pool, ws);
      const double format_err = rel(ref, truth, truth);  // the format's own, exact weights
      const double int_err = rel(int_w, ref, truth);     // the kernel's, against its format
      const double f32_err = rel(f32_w, ref, truth);
      std::printf("%-8s %-20s %12.2e %12.2e %12.2e %8.2f\n", format::info(v).name.data(), dist.name,
                  format_err, int_err, f32_err, int_err / format_err);
      EXPECT_LE(int_err, format_err) << format::info(v).name << " " << dist.name;
    }
  }
}

}  // namespace
}  // namespace kvpack::attention
