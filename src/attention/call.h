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
  float fold = 1.0f;  // q multiplier: the logit scale, divided by softcap when capping
  float softcap = 0.0f;
  int window = 0;
  int group = 1;  // query heads per KV head

  CallContext(const cache::LayerView& view, int n_q_heads, const Params& params);
};

// Loads the query rows of KV head `head` for `n_tokens` consecutive query tokens at positions
// pos0, pos0 + 1, ...: token i's group of rows is at q + i * token_stride (floats). Row
// r = i * group + g. Scales them, prepares them for the K kernel and sets their key ranges.
QueryRows load_rows(const cache::LayerView& view, const CallContext& ctx, int head, const float* q,
                    int n_tokens, size_t token_stride, int64_t pos0, ThreadScratch& s);

// Encoded pages [first, last) that any of the rows can see.
void visible_pages(const cache::LayerView& view, const QueryRows& rows, size_t* first,
                   size_t* last);

}  // namespace kvpack::attention::detail
