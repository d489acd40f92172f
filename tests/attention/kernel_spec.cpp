#include "kernel_spec.h"

#include <cmath>

#include "base/error.h"
#include "base/half.h"
#include "format/codebook.h"
#include "format/turbo_layout.h"
#include "kernel_expect.h"

namespace kvpack::testing {
namespace {

using format::FormatId;

double f16_at(const uint8_t* p) {
  return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

bool float_format(FormatId id) {
  return id == FormatId::f32 || id == FormatId::f16 || id == FormatId::bf16 || id == FormatId::fp8;
}
bool qjl(FormatId id) {
  return id == FormatId::turbo3_qjl || id == FormatId::turbo4_qjl;
}

size_t round4(int T) {
  return (static_cast<size_t>(T) + 3) / 4 * 4;
}

// q8, q4, q4a keys: codes interleaved across tokens (q8 [d/4][T][4] int8; 4-bit [d/8][T][4],
// channel 8o + i in the low nibble of byte (o, t, i), 8o + 4 + i in the high), then f16 steps
// [G][T], then q4a's f16 mins [G][T]. x = k step (q8), (u - 8) step (q4), u step + m (q4a).
void int_key_logits(const format::Codec& codec, const uint8_t* block, const float* qe,
                    double* logit, double* magnitude) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens(), g = format::group_size(d);
  const bool q8 = id == FormatId::q8;
  const size_t steps = round4(T) * d * (q8 ? 8 : 4) / 8;
  const size_t mins = steps + 2 * static_cast<size_t>(T) * (d / g);
  for (int t = 0; t < T; ++t) {
    logit[t] = magnitude[t] = 0;
    for (int j = 0; j < d; ++j) {
      double k;
      if (q8) {
        k = static_cast<int8_t>(block[(static_cast<size_t>(j / 4) * T + t) * 4 + j % 4]);
      } else {
        const uint8_t byte = block[(static_cast<size_t>(j / 8) * T + t) * 4 + j % 4];
        const int u = j % 8 < 4 ? byte & 15 : byte >> 4;
        k = id == FormatId::q4 ? u - 8 : u;
      }
      const size_t at = 2 * (static_cast<size_t>(j / g) * T + t);
      const double s = f16_at(block + steps + at);
      const double m = id == FormatId::q4a ? f16_at(block + mins + at) : 0.0;
      logit[t] += qe[j] * (k * s + m);
      magnitude[t] += std::fabs(qe[j]) * (std::fabs(k * s) + std::fabs(m));
    }
  }
}

// TurboQuant keys: norm x table scale x sum_j q_j code(idx_j) with the test's own int8 table,
// plus for QJL gamma sqrt(pi/2)/d sum_j (S q)_j z_j.
void turbo_key_logits(const format::Codec& codec, const uint8_t* block, const float* qe,
                      double* logit, double* magnitude) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens(), bits = turbo_mse_bits(id);
  const format::TurboLayout layout{d, T, bits, qjl(id), true};
  const Int8Table table = int8_table(d, bits);
  std::vector<uint8_t> idx(static_cast<size_t>(d)), signs(static_cast<size_t>(d) / 8);
  for (int t = 0; t < T; ++t) {
    logit[t] = magnitude[t] = 0;
    layout.load_codes(block, t, idx.data());
    const double norm = f16_to_f32(layout.norm(block, t));
    for (int j = 0; j < d; ++j) {
      const double term = double(qe[j]) * table.codes[idx[j]] * table.scale * norm;
      logit[t] += term;
      magnitude[t] += std::fabs(term);
    }
    if (!qjl(id)) continue;
    layout.load_signs(block, t, signs.data());
    const double g = f16_to_f32(layout.gamma(block, t)) * std::sqrt(std::acos(-1.0) / 2) / d;
    for (int j = 0; j < d; ++j) {
      const double z = (signs[j / 8] >> (j % 8)) & 1 ? 1.0 : -1.0;
      logit[t] += g * qe[d + j] * z;
      magnitude[t] += std::fabs(g * qe[d + j]);
    }
  }
}

// kivi: codes in a key bit plane, f16 steps [d] then mins [d] after them. Per page the query is
// folded with the steps (f32) and rounded per group of 32: scale a / 127, z = round(q s (127 /
// a)); logit = sum_j q_j m_j + sum_j scale z_j u_tj.
void kivi_logits(const format::Codec& codec, const uint8_t* block, const float* q, double* logit,
                 double* magnitude) {
  const int d = codec.head_dim(), T = codec.page_tokens();
  const int bits = codec.info().id == FormatId::kivi4 ? 4 : 2;
  const size_t codes = static_cast<size_t>(T) * d * bits / 8;
  std::vector<float> kd(static_cast<size_t>(T) * d);
  codec.decode(0, block, T, kd.data());
  double bias = 0, abs_bias = 0;
  std::vector<double> z(static_cast<size_t>(d)), sc(static_cast<size_t>(d) / 32);
  for (int j = 0; j < d; ++j) {
    bias += double(q[j]) * f16_at(block + codes + 2 * (d + j));
    abs_bias += std::fabs(double(q[j]) * f16_at(block + codes + 2 * (d + j)));
  }
  for (int g = 0; g < d / 32; ++g) {
    float amax = 0;
    for (int j = 32 * g; j < 32 * g + 32; ++j) {
      amax = std::fmax(amax, std::fabs(q[j] * static_cast<float>(f16_at(block + codes + 2 * j))));
    }
    sc[g] = amax / 127.0f;
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (int j = 32 * g; j < 32 * g + 32; ++j) {
      z[j] = std::nearbyint(q[j] * static_cast<float>(f16_at(block + codes + 2 * j)) * inv);
    }
  }
  for (int t = 0; t < T; ++t) {
    logit[t] = bias;
    magnitude[t] = abs_bias;
    for (int j = 0; j < d; ++j) {
      const double s = f16_at(block + codes + 2 * j), m = f16_at(block + codes + 2 * (d + j));
      const double u = s > 0 ? std::nearbyint((kd[t * d + j] - m) / s) : 0;
      logit[t] += static_cast<float>(sc[j / 32]) * z[j] * u;
      magnitude[t] += std::fabs(sc[j / 32] * z[j] * u);
    }
  }
}

}  // namespace

void round_to_int8(const float* x, int n, int group, int* codes, float* scales, float* effective) {
  for (int g0 = 0; g0 < n; g0 += group) {
    float amax = 0;
    for (int j = g0; j < g0 + group; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float s = amax / 127.0f;
    scales[g0 / group] = s;
    for (int j = g0; j < g0 + group; ++j) {
      codes[j] = s > 0 ? static_cast<int>(std::nearbyint(x[j] / s)) : 0;
      effective[j] = s * static_cast<float>(codes[j]);
    }
  }
}

SpecQuery spec_query(const format::Codec& codec, const attention::KernelInfo& kernel, int head,
                     const float* q_scaled) {
  const int d = codec.head_dim();
  SpecQuery out;
  out.scaled.assign(q_scaled, q_scaled + d);
  const FormatId id = codec.info().id;
  if (kernel.query_bits == 0 || id == FormatId::kivi4 || id == FormatId::kivi2) {
    if (kernel.query_bits == 0) {  // codec ops or float kernels: the f32 query, prepared
      out.effective.resize(codec.query_floats());
      codec.prepare_query(head, q_scaled, out.effective.data());
    }
    return out;
  }
  KVPACK_ASSERT(kernel.query_bits == 8, "query bits {}", kernel.query_bits);
  std::vector<float> prepared(codec.query_floats());
  codec.prepare_query(head, q_scaled, prepared.data());  // Pi q (and S q) for turbo
  out.effective.resize(prepared.size());
  std::vector<int> codes(static_cast<size_t>(d));
  std::vector<float> scales(static_cast<size_t>(d));
  const int group = kernel.query_group > 0 ? kernel.query_group : d;
  for (size_t part = 0; part < prepared.size(); part += static_cast<size_t>(d)) {
    // QJL's S q is rounded as a whole row too.
    round_to_int8(prepared.data() + part, d, part == 0 ? group : d, codes.data(), scales.data(),
                  out.effective.data() + part);
  }
  return out;
}

void spec_logits(const format::Codec& codec, const attention::KernelInfo& kernel, int head,
                 const uint8_t* block, const SpecQuery& q, double* logit, double* magnitude) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens();
  if (id == FormatId::kivi4 || id == FormatId::kivi2) {
    if (kernel.query_bits > 0) return kivi_logits(codec, block, q.scaled.data(), logit, magnitude);
  } else if (kernel.query_bits > 0 && turbo_mse_bits(id) > 0) {
    return turbo_key_logits(codec, block, q.effective.data(), logit, magnitude);
  } else if (kernel.query_bits > 0) {
    return int_key_logits(codec, block, q.effective.data(), logit, magnitude);
  }
  // f32 queries (float kernels, codec ops): the decoded keys, in the format's basis for the
  // rotated formats (their decode is exact up to the f32 rotation the caller bounds).
  std::vector<float> k(static_cast<size_t>(T) * d);
  codec.decode(head, block, T, k.data());
  std::vector<float> logits(static_cast<size_t>(T));
  codec.score(block, T, q.effective.data(), 1, logits.data(), T);
  for (int t = 0; t < T; ++t) {
    logit[t] = magnitude[t] = 0;
    if (float_format(id)) {
      for (int j = 0; j < d; ++j) logit[t] += double(q.scaled[j]) * k[t * d + j];
    } else {
      logit[t] = logits[t];
    }
    for (int j = 0; j < d; ++j) magnitude[t] += std::fabs(double(q.scaled[j]) * k[t * d + j]);
  }
}

ValueBlock read_value_block(const format::Codec& codec, int head, const uint8_t* block) {
  const FormatId id = codec.info().id;
  const int d = codec.head_dim(), T = codec.page_tokens();
  ValueBlock r;
  r.E.resize(static_cast<size_t>(T) * d);
  r.e.resize(r.E.size());
  if (float_format(id)) {
    std::vector<float> x(r.E.size());  // the float formats' decode is exact
    codec.decode(head, block, T, x.data());
    r.E.assign(x.begin(), x.end());
    r.a.assign(static_cast<size_t>(T), 1.0);
    r.m.assign(static_cast<size_t>(T), 0.0);
    return r;
  }
  const int bits = turbo_mse_bits(id);
  if (bits > 0) {
    const format::TurboLayout layout{d, T, bits, false, false};
    const Int8Table table = int8_table(d, bits);
    const format::Codebook& cb = format::codebook(d, bits);
    r.post = table.scale;
    std::vector<uint8_t> idx(static_cast<size_t>(d));
    for (int t = 0; t < T; ++t) {
      r.a.push_back(f16_to_f32(layout.norm(block, t)));
      r.m.push_back(0);
      layout.load_codes(block, t, idx.data());
      for (int j = 0; j < d; ++j) {
        r.E[t * d + j] = cb.centroids[idx[j]];
        r.e[t * d + j] = table.codes[idx[j]];
      }
    }
    return r;
  }
  // q8: int8 [T4/4][d][4] token quads; q4, q4a: [T4/4][d/2][4], byte lane l < 16 of each
  // 32-channel block holding channel l (low nibble) and l + 16 (high). Steps f16 [G][T] after
  // the codes, q4a's mins f16 [G][T] after the steps.
  const bool q8 = id == FormatId::q8;
  r.has_min = id == FormatId::q4a;
  r.groups = d / format::group_size(d);
  const size_t steps = round4(T) * d * (q8 ? 8 : 4) / 8;
  const size_t mins = steps + 2 * static_cast<size_t>(T) * r.groups;
  for (int g = 0; g < r.groups; ++g) {
    for (int t = 0; t < T; ++t) {
      const size_t at = 2 * (static_cast<size_t>(g) * T + t);
      r.a.push_back(f16_at(block + steps + at));
      r.m.push_back(r.has_min ? f16_at(block + mins + at) : 0.0);
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < d; ++j) {
      if (q8) {
        const auto k = static_cast<int8_t>(block[(static_cast<size_t>(t / 4) * d + j) * 4 + t % 4]);
        r.E[t * d + j] = r.e[t * d + j] = k;
        continue;
      }
      const int lane = 16 * (j / 32) + j % 16;
      const uint8_t byte = block[(static_cast<size_t>(t / 4) * (d / 2) + lane) * 4 + t % 4];
      const int u = j % 32 < 16 ? byte & 15 : byte >> 4;
      r.e[t * d + j] = u - 8;
      r.E[t * d + j] = r.has_min ? u : u - 8;
    }
  }
  return r;
}

}  // namespace kvpack::testing
