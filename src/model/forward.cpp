// The forward pass's plumbing: buffers, the batch's passes, the cache steps, embedding, the final
// norm and the logits. The transformer block itself is in forward_layer.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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
  if (options_.attention == nullptr) own_attention_ = attention::make_cpu_backend(pool);
  attention_ = options_.attention != nullptr ? options_.attention : own_attention_.get();
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
  logits_rows_ = 1;
  tokens_.resize(chunk);
  row_pos_.resize(chunk);
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
  for (const Piece& p : s.pieces) {
    options_.trace({full, s.layer, p.pos, p.n, cols, data + int64_t{p.row} * cols});
  }
}

// x = the rows' embeddings, times the architecture's embedding scale.
void Forward::embed(const Step& s) {
  get_rows(w_.token_embd, tokens_.data(), s.n, x_.get());
  if (spec_.embed_scale != 1.0f) {
    float* x = x_.get();
    const size_t n = static_cast<size_t>(s.n) * spec_.n_embd;
    for (size_t i = 0; i < n; ++i) x[i] *= spec_.embed_scale;
  }
  trace("token_embd", s, spec_.n_embd, x_.get());
}

// logits = W_out RMSNorm(x) for the rows out_src_ names, then the final softcap.
void Forward::output(const Step& out, float* logits) {
  const size_t d = static_cast<size_t>(spec_.n_embd);
  for (int t = 0; t < out.n; ++t) {
    std::memcpy(h_.get() + t * d,
                x_.get() + static_cast<size_t>(out_src_[static_cast<size_t>(t)]) * d,
                d * sizeof(float));
  }
  norm(w_.output_norm, h_.get(), h_.get(), out);
  matmul(w_.output, h_.get(), out.n, logits, pool_, options_.dot);
  trace("output.weight", out, spec_.n_vocab, logits);  // also when the output is tied
  if (spec_.final_softcap > 0) {
    const float cap = spec_.final_softcap;
    const size_t n = static_cast<size_t>(out.n) * spec_.n_vocab;
    for (size_t i = 0; i < n; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
    trace("result_output", out, spec_.n_vocab, logits);
  }
}

namespace {

// How errors about item i begin: a lone item's as they always have, a batch's naming the sequence.
std::string prefix(std::span<const BatchItem> items, size_t i) {
  return items.size() == 1 ? std::string("forward: ")
                           : fmt::format("forward: sequence {}: ", items[i].seq);
}

}  // namespace

void Forward::check(std::span<const BatchItem> items) const {
  if (items.empty()) fail("forward: no sequences to evaluate");
  for (size_t i = 0; i < items.size(); ++i) {
    const std::span<const int32_t> tokens = items[i].tokens;
    if (tokens.empty()) fail("{}no tokens to evaluate", prefix(items, i));
    for (size_t t = 0; t < tokens.size(); ++t) {
      if (tokens[t] < 0 || tokens[t] >= spec_.n_vocab) {
        fail("{}token {} (id {}) is outside the vocabulary of {} tokens", prefix(items, i), t,
             tokens[t], spec_.n_vocab);
      }
    }
    const int64_t have = cache_.n_tokens(items[i].seq);
    if (options_.n_ctx > 0 && have + static_cast<int64_t>(tokens.size()) > options_.n_ctx) {
      fail("{}{} more tokens after {} exceed the context of {} tokens", prefix(items, i),
           tokens.size(), have, options_.n_ctx);
    }
    for (size_t j = 0; j < i; ++j) {
      if (items[j].seq == items[i].seq) {
        fail("forward: sequence {} appears twice in the batch", items[i].seq);
      }
    }
  }
}

// Every item's cache step, begun before any layer writes: each takes the pages its tokens need
// (chunks of max_chunk tokens let sliding-window layers recycle the pages a long prompt leaves
// behind their window). One that does not fit undoes the ones begun.
void Forward::begin_steps(std::span<const BatchItem> items) {
  start_.clear();
  item_row_.clear();
  int64_t row = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t start = cache_.n_tokens(items[i].seq);
    try {
      cache_.begin_step(items[i].seq, items[i].tokens, options_.max_chunk);
    } catch (const Error& e) {
      for (size_t j = i; j-- > 0;) cache_.rollback_step(items[j].seq);
      fail("{}{} tokens after {}: {}", prefix(items, i), items[i].tokens.size(), start, e.what());
    }
    start_.push_back(start);
    item_row_.push_back(row);
    row += static_cast<int64_t>(items[i].tokens.size());
  }
}

// Packs the items' tokens into a pass in item order, up to max_chunk rows: an item longer than
// what is left of the pass continues in the next one, so each pass holds at most one piece per
// item, and no item appends more than max_chunk tokens between its attention calls (the promise
// begin_step's chunk makes). Single-row pieces (decode rows) come first, so that their queries
// are consecutive rows for attention::decode_batch.
void Forward::plan_pass(std::span<const BatchItem> items, size_t& item, int64_t& off) {
  pieces_.clear();
  int rows = 0;
  while (item < items.size() && rows < options_.max_chunk) {
    const auto size = static_cast<int64_t>(items[item].tokens.size());
    const int n = static_cast<int>(std::min<int64_t>(size - off, options_.max_chunk - rows));
    pieces_.push_back({item, items[item].seq, 0, n, off, start_[item] + off});
    rows += n;
    off += n;
    if (off == size) {
      ++item;
      off = 0;
    }
  }
  std::stable_partition(pieces_.begin(), pieces_.end(), [](const Piece& p) { return p.n == 1; });
  int row = 0;
  for (Piece& p : pieces_) {
    p.row = row;
    for (int t = 0; t < p.n; ++t) {
      tokens_[static_cast<size_t>(row + t)] = items[p.item].tokens[static_cast<size_t>(p.off + t)];
      row_pos_[static_cast<size_t>(row + t)] = p.pos + t;
    }
    row += p.n;
  }
}

void Forward::pass(std::span<const BatchItem> items, float* logits, bool all) {
  int n = 0;
  for (const Piece& p : pieces_) n += p.n;
  embed({-1, n, pieces_});
  for (int l = 0; l < spec_.n_layers(); ++l) layer({l, n, pieces_});
  // The logits asked for, in item order: every row, or each item's last row once it is here.
  out_pieces_.assign(pieces_.begin(), pieces_.end());
  std::sort(out_pieces_.begin(), out_pieces_.end(),
            [](const Piece& a, const Piece& b) { return a.item < b.item; });
  out_src_.clear();
  size_t kept = 0;
  for (const Piece& p : out_pieces_) {
    Piece o = p;
    o.row = static_cast<int>(out_src_.size());
    if (all) {
      for (int t = 0; t < p.n; ++t) out_src_.push_back(p.row + t);
    } else if (p.off + p.n == static_cast<int64_t>(items[p.item].tokens.size())) {
      o.n = 1;
      o.off += p.n - 1;
      o.pos += p.n - 1;
      out_src_.push_back(p.row + p.n - 1);
    } else {
      continue;
    }
    out_pieces_[kept++] = o;
  }
  out_pieces_.resize(kept);
  if (kept == 0) return;
  // Items finishing in one pass are consecutive (items are packed in order), and so are the rows
  // of all items: the output rows land as one block.
  const Piece& first = out_pieces_.front();
  const int64_t dest = all ? item_row_[first.item] + first.off : static_cast<int64_t>(first.item);
  output({-1, static_cast<int>(out_src_.size()), out_pieces_},
         logits + static_cast<size_t>(dest) * spec_.n_vocab);
}

void Forward::run(std::span<const BatchItem> items, float* logits, bool all) {
  check(items);
  begin_steps(items);
  try {
    size_t item = 0;
    int64_t off = 0;
    while (item < items.size()) {
      plan_pass(items, item, off);
      pass(items, logits, all);
    }
  } catch (...) {
    // Whatever failed (a value, a kernel, the trace callback): every sequence as before.
    for (size_t j = items.size(); j-- > 0;) cache_.rollback_step(items[j].seq);
    throw;
  }
  for (const BatchItem& it : items) cache_.commit_step(it.seq);
}

std::span<const float> Forward::eval_batch(std::span<const BatchItem> items) {
  if (items.size() > logits_rows_) {
    logits_ = make_aligned<float>(items.size() * static_cast<size_t>(spec_.n_vocab));
    logits_rows_ = items.size();
  }
  run(items, logits_.get(), /*all=*/false);
  return {logits_.get(), items.size() * static_cast<size_t>(spec_.n_vocab)};
}

std::span<const float> Forward::eval(cache::SeqId seq, std::span<const int32_t> tokens) {
  const BatchItem item{seq, tokens};
  return eval_batch({&item, 1});
}

void Forward::eval_all(cache::SeqId seq, std::span<const int32_t> tokens, float* logits) {
  const BatchItem item{seq, tokens};
  run({&item, 1}, logits, /*all=*/true);
}

}  // namespace kvpack::model
