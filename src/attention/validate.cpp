#include "attention/validate.h"

#include <algorithm>

#include "base/error.h"

namespace kvpack::attention::detail {
namespace {

void validate_view(const cache::LayerView& v) {
  if (v.k_codec == nullptr || v.v_codec == nullptr) fail("attention: the view has no codecs");
  if (v.n_kv_heads <= 0 || v.page_tokens <= 0) {
    fail("attention: the view has {} KV heads and {} tokens per page; both must be positive",
         v.n_kv_heads, v.page_tokens);
  }
  if (v.k_codec->head_dim() != v.head_dim_k || v.v_codec->head_dim() != v.head_dim_v) {
    fail("attention: head dims K {} / V {} differ from the codecs' {} / {}", v.head_dim_k,
         v.head_dim_v, v.k_codec->head_dim(), v.v_codec->head_dim());
  }
  if (v.k_codec->page_tokens() != v.page_tokens || v.v_codec->page_tokens() != v.page_tokens) {
    fail("attention: the view's {} tokens per page differ from the codecs' {} (K) / {} (V)",
         v.page_tokens, v.k_codec->page_tokens(), v.v_codec->page_tokens());
  }
  if (v.k_codec->config().n_heads < v.n_kv_heads || v.v_codec->config().n_heads < v.n_kv_heads) {
    fail("attention: the codecs serve fewer heads than the view's {}", v.n_kv_heads);
  }
  if (v.k_codec->config().role != format::Role::K || v.v_codec->config().role != format::Role::V) {
    fail("attention: the K codec must have the K role and the V codec the V role");
  }
  if (!v.page_ids.empty() && (v.k_pages == nullptr || v.v_pages == nullptr)) {
    fail("attention: the view lists {} pages but has no page pool", v.page_ids.size());
  }
  if (v.tail_tokens < 0 || static_cast<size_t>(v.tail_tokens) > v.tail_head_stride ||
      (v.tail_tokens > 0 && (v.k_tail == nullptr || v.v_tail == nullptr))) {
    fail("attention: tail of {} tokens does not fit its stride of {} tokens per head",
         v.tail_tokens, v.tail_head_stride);
  }
}

}  // namespace

void validate_call(const cache::LayerView& view, int n_new, int n_q_heads, const Params& params) {
  validate_view(view);
  if (n_q_heads <= 0 || n_q_heads % view.n_kv_heads != 0) {
    fail("attention: {} query heads is not a positive multiple of the {} KV heads", n_q_heads,
         view.n_kv_heads);
  }
  if (n_new <= 0 || n_new > view.n_tokens()) {
    fail(
        "attention: {} new tokens, but the view holds {} tokens (the new tokens must be appended "
        "first)",
        n_new, view.n_tokens());
  }
  if (!std::isfinite(params.scale) || params.scale < 0) {
    fail("attention: scale {} must be finite and non-negative (0 = 1/sqrt(head dim))",
         params.scale);
  }
  if (!std::isfinite(params.softcap) || params.softcap < 0) {
    fail("attention: softcap {} must be finite and non-negative (0 = off)", params.softcap);
  }
  if (params.window < 0) fail("attention: window {} must be non-negative (0 = off)", params.window);
  // A view whose first pages were released (a sliding-window layer) serves only queries whose
  // window starts at or after its first token.
  if (view.first_page > 0) {
    const int64_t first_query = view.n_tokens() - n_new;
    const int64_t reach = params.window > 0 ? first_query - params.window + 1 : 0;
    if (reach < view.first_token()) {
      fail(
          "attention: the view starts at token {} (its earlier pages were released), but the "
          "query at position {} with window {} reads from token {}",
          view.first_token(), first_query, params.window, std::max<int64_t>(reach, 0));
    }
  }
  if (params.sinks != nullptr) {
    for (int i = 0; i < n_q_heads; ++i) {
      if (!std::isfinite(params.sinks[i])) {
        fail("attention: sink logit of head {} is {}; it must be finite", i, params.sinks[i]);
      }
    }
  }
}

}  // namespace kvpack::attention::detail
