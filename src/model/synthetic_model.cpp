#include "model/synthetic_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/rng.h"
#include "model/quant_ref.h"

namespace kvpack::model {
namespace {

// Tensors above this many values keep only kDistinctRows distinct rows.
constexpr int64_t kLargeTensor = int64_t{1} << 22;
constexpr int64_t kDistinctRows = 64;

class TensorMaker {
 public:
  TensorMaker(const SyntheticModel& m, GgufWriter& w) : m_(m), w_(w), rng_(m.seed) {}

  // A (rows, cols) tensor (ggml shape [cols, rows]; rows == 0 writes a vector [cols]) with
  // values mean + stddev * N(0, 1).
  void add(const std::string& name, GgmlType type, int64_t rows, int64_t cols, double mean,
           double stddev) {
    if (std::find(m_.omit.begin(), m_.omit.end(), name) != m_.omit.end()) return;
    for (const auto& [n, t] : m_.retype) {
      if (n == name) type = t;
    }
    std::vector<int64_t> shape = {cols};
    if (rows > 0) shape.push_back(rows);
    const int64_t n_rows = std::max<int64_t>(rows, 1);
    if (!is_weight_type(type)) {
      w_.add_zero_tensor(name, shape, type);
      return;
    }
    if (cols % weight_block_size(type) != 0) {
      fail("synthetic model: tensor '{}' has rows of {} values, not whole {} blocks of {}", name,
           cols, ggml_type_name(static_cast<uint32_t>(type)), weight_block_size(type));
    }
    const size_t row_bytes = weight_row_bytes(type, cols);
    std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(n_rows));
    std::vector<float> row(static_cast<size_t>(cols));
    // Benchmark-sized tensors repeat their first rows: drawing and quantizing every value of a
    // multi-gigabyte model would take minutes, and speed does not depend on the values.
    const int64_t distinct = n_rows * cols > kLargeTensor ? kDistinctRows : n_rows;
    for (int64_t r = 0; r < n_rows; ++r) {
      if (r >= distinct) {
        std::memcpy(bytes.data() + r * row_bytes, bytes.data() + (r % distinct) * row_bytes,
                    row_bytes);
        continue;
      }
      for (float& x : row) x = static_cast<float>(mean + stddev * rng_.normal());
      quantize_row_ref(type, row.data(), bytes.data() + r * row_bytes, cols);
    }
    w_.add_tensor(name, shape, type, bytes);
  }

  void matrix(const std::string& name, int64_t rows, int64_t cols) {
    add(name, m_.type, rows, cols, 0.0, 1.0 / std::sqrt(static_cast<double>(cols)));
  }
  void norm(const std::string& name, int64_t n) { add(name, GgmlType::F32, 0, n, 1.0, 0.1); }

  // A vector of given F32 values.
  void values(const std::string& name, const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    w_.add_tensor(name, {static_cast<int64_t>(v.size())}, GgmlType::F32,
                  std::span<const uint8_t>(p, v.size() * sizeof(float)));
  }

 private:
  const SyntheticModel& m_;
  GgufWriter& w_;
  Rng rng_;
};

}  // namespace

GgufWriter synthetic_llama(const SyntheticModel& m) {
  if (m.n_layers < 1 || m.n_embd < 1 || m.n_heads < 1 || m.n_kv_heads < 1 || m.head_dim < 2 ||
      m.n_ff < 1 || m.n_vocab < 1 || m.n_ctx < 1 || m.n_heads % m.n_kv_heads != 0) {
    fail("synthetic model: every size must be positive and heads a multiple of KV heads");
  }
  GgufWriter w;
  const std::string a = m.arch + ".";
  const auto u32 = [](int64_t v) { return gguf_uint(GgufType::u32, static_cast<uint64_t>(v)); };
  w.set("general.architecture", gguf_string(m.arch));
  w.set("general.name",
        gguf_string(fmt::format("synthetic-{}-{}L-{}d", m.arch, m.n_layers, m.n_embd)));
  w.set(a + "block_count", u32(m.n_layers));
  w.set(a + "context_length", u32(m.n_ctx));
  w.set(a + "embedding_length", u32(m.n_embd));
  w.set(a + "feed_forward_length", u32(m.n_ff));
  w.set(a + "attention.head_count", u32(m.n_heads));
  w.set(a + "attention.head_count_kv", u32(m.n_kv_heads));
  w.set(a + "attention.key_length", u32(m.head_dim));
  w.set(a + "attention.value_length", u32(m.head_dim));
  w.set(a + "attention.layer_norm_rms_epsilon", gguf_float(GgufType::f32, 1e-5));
  w.set(a + "rope.dimension_count", u32(m.head_dim));
  w.set(a + "rope.freq_base", gguf_float(GgufType::f32, m.rope_base));
  w.set(a + "vocab_size", u32(m.n_vocab));
  w.set("tokenizer.ggml.model", gguf_string("none"));

  TensorMaker t(m, w);
  const int64_t q = int64_t{m.n_heads} * m.head_dim, kv = int64_t{m.n_kv_heads} * m.head_dim;
  t.add("token_embd.weight", m.embd_type, m.n_vocab, m.n_embd, 0.0, 1.0);
  for (int l = 0; l < m.n_layers; ++l) {
    const auto name = [l](const char* what) { return fmt::format("blk.{}.{}.weight", l, what); };
    t.norm(name("attn_norm"), m.n_embd);
    t.matrix(name("attn_q"), q, m.n_embd);
    t.matrix(name("attn_k"), kv, m.n_embd);
    t.matrix(name("attn_v"), kv, m.n_embd);
    t.matrix(name("attn_output"), m.n_embd, q);
    t.norm(name("ffn_norm"), m.n_embd);
    t.matrix(name("ffn_gate"), m.n_ff, m.n_embd);
    t.matrix(name("ffn_up"), m.n_ff, m.n_embd);
    t.matrix(name("ffn_down"), m.n_embd, m.n_ff);
  }
  t.norm("output_norm.weight", m.n_embd);
  if (!m.tied_output) {
    t.add("output.weight", m.embd_type, m.n_vocab, m.n_embd, 0.0,
          1.0 / std::sqrt(static_cast<double>(m.n_embd)));
  }
  // Llama 3's long-context factors: high frequencies kept (1), low ones slowed down (up to 8).
  if (m.rope_freqs) {
    std::vector<float> factors(static_cast<size_t>(m.head_dim / 2));
    for (size_t i = 0; i < factors.size(); ++i) {
      factors[i] = 1.0f + 7.0f * static_cast<float>(i) / static_cast<float>(factors.size());
    }
    t.values("rope_freqs.weight", factors);
  }
  return w;
}

}  // namespace kvpack::model
