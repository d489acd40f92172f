// Model architectures as one table: where the transformer families differ (RoPE ordering, biases,
// extra norms, activation, embedding scale), each is a column, and each architecture one row, so
// the forward pass reads the row instead of testing architecture names. `supported` marks the
// rows the forward pass implements today; the others are filled in so a later issue only has to
// turn them on.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "model/rope.h"

namespace kvpack::model {

enum class FfnActivation { silu, gelu_tanh };

struct ArchTraits {
  std::string_view name;  // general.architecture
  bool supported;         // the forward pass implements every column below for this row
  RopeOrdering rope;      // interleaved pairs (llama) or NeoX halves
  bool qkv_bias;          // blk.N.attn_{q,k,v}.bias (Qwen 2)
  bool qk_norm;           // RMSNorm on each head's q and k before RoPE (Qwen 3, Gemma 3)
  bool post_norms;        // RMSNorm on the attention and FFN outputs before the residual (Gemma)
  bool embed_scale;       // embeddings multiplied by sqrt(n_embd) (Gemma)
  FfnActivation ffn;
  int swa_period;  // sliding layers: l % period != period - 1; 0 = none (Gemma 2: 2, Gemma 3: 6)
};

// Every architecture kvpack knows, supported or not.
std::span<const ArchTraits> all_architectures();
// The row for `name`, supported or not; nullptr for an architecture kvpack does not know.
const ArchTraits* find_architecture(std::string_view name);
// The row for `name`; throws Error for a known row that is not supported yet ("architecture
// 'gemma3' is not supported yet (supported: llama)") and for an unknown name. `source` (a file
// name) prefixes the message.
const ArchTraits& require_architecture(std::string_view name, std::string_view source);
// "llama": the names of the supported rows, for messages.
std::string supported_architectures();

}  // namespace kvpack::model
