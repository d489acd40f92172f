// Internal: what decode and prefill share per call (kernels, folded scale, options) and the
// setup of one work item's query rows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "attention/kernels.h"
#include "attention/span.h"
#include "attention/workspace.h"
#include "kvpack/attention.h"

namespace kvpack::attention::detail {

struct CallContext {
  const KKernel* k = nullptr;
  const VKernel* v = nullptr;
  // q multiplier: the logit scale times log2(e) (softmax in log2 units), or the logit scale
  // divided by softcap when capping.
  float fold = 1.0f;
  float softcap = 0.0f;
  int window = 0;
  int group = 1;  // query heads per KV head

  CallContext(const cache::LayerView& view, int n_q_heads, const Params& params);
};

// Loads the query rows of KV heads [h0, h0 + n_heads) for `n_tokens` consecutive query tokens at
// positions pos0, pos0 + 1, ...: token i's rows are at q + i * token_stride (floats). Row
// (h * n_tokens + i) * group + g is query head (h0 + h) * group + g of token i. Scales them,
// prepares them for the K kernel and sets their key ranges, in `dst`.
QueryRows load_rows(const cache::LayerView& view, const CallContext& ctx, int h0, int n_heads,
                    const float* q, int n_tokens, size_t token_stride, int64_t pos0,
                    const RowBuffers& dst);

// Rows already loaded into `src` (n_heads * per_head of them).
QueryRows rows_of(const RowBuffers& src, int n_heads, int per_head);

// Encoded pages [first, last) that any of the rows can see.
void visible_pages(const cache::LayerView& view, const QueryRows& rows, size_t* first,
                   size_t* last);

}  // namespace kvpack::attention::detail
