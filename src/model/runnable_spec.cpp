// read_runnable_spec: what the forward pass needs of a model description beyond what the
// planner reads, each refusal naming the file and the key or tensor.
#include "base/error.h"
#include "model/arch_keys.h"
#include "model/gguf.h"
#include "model/model_spec.h"

namespace kvpack::model {
namespace {

// The forward pass runs one head count in every layer (grouped-query attention).
void check_heads(const ArchKeys& keys, const ModelSpec& m) {
  const std::string& path = keys.file().path();
  for (const LayerSpec& l : m.layers) {
    if (l.q_heads != m.layers[0].q_heads) {
      fail("{}: metadata '{}' differs between layers, which kvpack does not support yet", path,
           keys.key("attention.head_count"));
    }
    if (l.kv_heads != m.layers[0].kv_heads) {
      fail("{}: metadata '{}' differs between layers, which kvpack does not support yet", path,
           keys.key("attention.head_count_kv"));
    }
  }
  keys.in_range("attention.head_count", m.n_heads(), 1, kMaxHeads);
  if (m.n_heads() % m.n_kv_heads() != 0) {
    fail("{}: {} query heads are not a multiple of {} KV heads ({})", path, m.n_heads(),
         m.n_kv_heads(), keys.key("attention.head_count_kv"));
  }
}

// A dense FFN of one width in every layer, or a mixture of experts with its counts.
void check_ffn(const ArchKeys& keys, const ModelSpec& m) {
  const std::string& path = keys.file().path();
  if (m.traits->ffn == FfnKind::moe_swiglu) {
    keys.in_range("expert_count", m.moe.n_expert, 1, kMaxExperts);
    keys.in_range("expert_used_count", m.moe.n_expert_used, 1, m.moe.n_expert);
    keys.in_range("expert_feed_forward_length", m.moe.n_ff_exp, 1, kMaxWidth);
    return;
  }
  const auto ff = keys.per_layer("feed_forward_length", m.n_layers(), 1, kMaxWidth);
  if (!ff) fail("{}: missing metadata '{}'", path, keys.key("feed_forward_length"));
  for (int w : *ff) {
    if (w != (*ff)[0]) {
      fail("{}: metadata '{}' differs between layers, which kvpack does not support yet", path,
           keys.key("feed_forward_length"));
    }
  }
}

void check_rope_scaling(const ArchKeys& keys, const ModelSpec& m) {
  const std::string& type = m.rope_scaling;
  if (type.empty() || type == "none" || type == "linear" || type == "yarn" ||
      m.rope_factor == 1.0) {
    return;
  }
  fail("{}: RoPE scaling '{}' ({}) is not supported yet (supported: none, linear, yarn)",
       keys.file().path(), type, keys.key("rope.scaling.type"));
}

// token_embd.weight [n_embd, n_vocab] gives the vocabulary size.
void check_vocab(const GgufFile& f, const ModelSpec& m) {
  if (f.tensors().empty()) {
    fail(
        "{}: has no tensors (a vocab-only GGUF?); a model needs its weights, e.g. "
        "'token_embd.weight'",
        f.path());
  }
  if (f.find_tensor("token_embd.weight") == nullptr) {
    fail("{}: missing tensor 'token_embd.weight'", f.path());
  }
  if (m.n_vocab == 0)
    fail("{}: tensor 'token_embd.weight' should be [{}, n_vocab]", f.path(), m.n_embd);
}

}  // namespace

ModelSpec read_runnable_spec(const GgufFile& f) {
  require_architecture(f.require_string("general.architecture"), f.path());
  const ModelSpec m = read_model_spec(f);
  const ArchKeys keys(f, m.arch);
  check_heads(keys, m);
  if (m.n_embd == 0) fail("{}: missing metadata '{}'", f.path(), keys.key("embedding_length"));
  check_ffn(keys, m);
  check_rope_scaling(keys, m);
  check_vocab(f, m);
  return m;
}

}  // namespace kvpack::model
