// The forward pass's plumbing: buffers, chunking, the cache step, embedding, the final norm and
// the logits. The transformer block itself is in forward_layer.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "kvpack/model.h"
#include "model/ops.h"

namespace kvpack::model {
namespace {

// Attention parameters per layer from its spec: sliding window, query scale, logit softcap.
std::vector<attention::Params> layer_params(const ModelSpec& spec) {
  std::vector<attention::Params> out;
  for (const LayerSpec& l : spec.layers) {
    attention::Params p;
    p.scale = l.att_scale;
    p.softcap = l.att_softcap;
    if (l.window > INT32_MAX) fail("forward: a sliding window of {} tokens is too long", l.window);
    p.window = static_cast<int>(l.window);
    out.push_back(p);
  }
  return out;
}

}  // namespace

Forward::Forward(const Model& model, cache::Cache& cache, ThreadPool& pool, ForwardOptions options)
    : model_(model),
      spec_(model.spec()),
      w_(model.weights()),
      cache_(cache),
      pool_(pool),
      options_(std::move(options)),
      att_params_(layer_params(spec_)) {
  if (options_.max_chunk < 1) fail("forward: max_chunk {} must be at least 1", options_.max_chunk);
  const cache::CacheConfig& c = cache.config();
  if (c.n_layers != spec_.n_layers() || c.n_kv_heads != spec_.n_kv_heads() ||
      c.head_dim_k != spec_.head_dim_k || c.head_dim_v != spec_.head_dim_v) {
    fail(
        "forward: the cache holds {} layers x {} KV heads of dims {}/{}, the model needs {} x {} "
        "of {}/{}",
        c.n_layers, c.n_kv_heads, c.head_dim_k, c.head_dim_v, spec_.n_layers(), spec_.n_kv_heads(),
        spec_.head_dim_k, spec_.head_dim_v);
  }
  const size_t chunk = static_cast<size_t>(options_.max_chunk);
  const size_t embd = chunk * spec_.n_embd;
  x_ = make_aligned<float>(embd);
  h_ = make_aligned<float>(embd);
  q_ = make_aligned<float>(chunk * spec_.q_dim());
  k_ = make_aligned<float>(chunk * spec_.k_dim());
  v_ = make_aligned<float>(chunk * spec_.v_dim());
  att_ = make_aligned<float>(chunk * spec_.att_dim());
  gate_ = make_aligned<float>(chunk * spec_.ffn_width());
  up_ = make_aligned<float>(chunk * spec_.ffn_width());
  logits_ = make_aligned<float>(static_cast<size_t>(spec_.n_vocab));
  if (spec_.moe.n_expert > 0) {
    const auto used = static_cast<size_t>(spec_.moe.n_expert_used);
    router_ = make_aligned<float>(chunk * spec_.moe.n_expert);
    moe_ids_.resize(chunk * used);
    moe_weights_.resize(chunk * used);
    expert_rows_.resize(chunk);
    expert_in_ = make_aligned<float>(embd);
    expert_out_ = make_aligned<float>(embd);
    moe_out_ = make_aligned<float>(embd);
  }
}

void Forward::trace(std::string_view name, const Step& s, int64_t cols, const float* data) const {
  if (!options_.trace) return;
  // Steps without a tensor of their own are named within their block, as llama.cpp does.
  const std::string full = s.layer >= 0 && name.find('.') == std::string_view::npos
                               ? fmt::format("blk.{}.{}", s.layer, name)
                               : std::string(name);
  options_.trace({full, s.layer, s.pos, s.n, cols, data});
}

// x = the tokens' embedding rows, times the architecture's embedding scale.
void Forward::embed(std::span<const int32_t> tokens, const Step& s) {
  get_rows(w_.token_embd, tokens.data(), s.n, x_.get());
  if (spec_.embed_scale != 1.0f) {
    float* x = x_.get();
    const size_t n = static_cast<size_t>(s.n) * spec_.n_embd;
    for (size_t i = 0; i < n; ++i) x[i] *= spec_.embed_scale;
  }
  trace("token_embd", s, spec_.n_embd, x_.get());
}

// logits = W_out RMSNorm(x) for the s.n rows of x, then the final softcap.
void Forward::output(const float* x, const Step& s, float* logits) {
  norm(w_.output_norm, x, h_.get(), s);
  matmul(w_.output, h_.get(), s.n, logits, pool_, options_.dot);
  trace("output.weight", s, spec_.n_vocab, logits);  // also when the output is tied
  if (spec_.final_softcap > 0) {
    const float cap = spec_.final_softcap;
    const size_t n = static_cast<size_t>(s.n) * spec_.n_vocab;
    for (size_t i = 0; i < n; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
    trace("result_output", s, spec_.n_vocab, logits);
  }
}

void Forward::chunk(cache::SeqId seq, std::span<const int32_t> tokens, int64_t pos, float* logits,
                    bool all) {
  const int n = static_cast<int>(tokens.size());
  embed(tokens, {-1, pos, n});
  for (int l = 0; l < spec_.n_layers(); ++l) layer(seq, {l, pos, n});
  // The logits of the rows asked for: all, or the last.
  const int first = all ? 0 : n - 1;
  output(x_.get() + static_cast<size_t>(first) * spec_.n_embd, {-1, pos + first, n - first},
         logits);
}

void Forward::check(cache::SeqId seq, std::span<const int32_t> tokens) const {
  if (tokens.empty()) fail("forward: no tokens to evaluate");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= spec_.n_vocab) {
      fail("forward: token {} (id {}) is outside the vocabulary of {} tokens", i, tokens[i],
           spec_.n_vocab);
    }
  }
  const int64_t have = cache_.n_tokens(seq);
  if (options_.n_ctx > 0 && have + static_cast<int64_t>(tokens.size()) > options_.n_ctx) {
    fail("forward: {} more tokens after {} exceed the context of {} tokens", tokens.size(), have,
         options_.n_ctx);
  }
}

void Forward::run(cache::SeqId seq, std::span<const int32_t> tokens, float* logits, bool all) {
  check(seq, tokens);
  const int64_t start = cache_.n_tokens(seq);
  try {
    cache_.begin_step(seq, tokens);  // takes every page the tokens need before any layer writes
  } catch (const Error& e) {
    fail("forward: {} tokens after {}: {}", tokens.size(), start, e.what());
  }
  try {
    const auto max_chunk = static_cast<size_t>(options_.max_chunk);
    for (size_t at = 0; at < tokens.size(); at += max_chunk) {
      const size_t n = std::min(tokens.size() - at, max_chunk);
      float* out = all ? logits + at * spec_.n_vocab : logits;
      chunk(seq, tokens.subspan(at, n), start + static_cast<int64_t>(at), out, all);
    }
  } catch (...) {
    cache_.rollback_step(seq);  // whatever failed (a value, a kernel, the trace callback)
    throw;
  }
  cache_.commit_step(seq);
}

std::span<const float> Forward::eval(cache::SeqId seq, std::span<const int32_t> tokens) {
  run(seq, tokens, logits_.get(), /*all=*/false);
  return {logits_.get(), static_cast<size_t>(spec_.n_vocab)};
}

void Forward::eval_all(cache::SeqId seq, std::span<const int32_t> tokens, float* logits) {
  run(seq, tokens, logits, /*all=*/true);
}

}  // namespace kvpack::model
