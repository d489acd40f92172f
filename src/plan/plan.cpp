// One model + policy against a budget: totals, max context, sessions, headroom.
//
// The fixed overhead (kDefaultOverhead, 1 GiB, `--overhead` to change it) stands for what a run
// needs besides weights and K/V: the runtime itself (process, CUDA or Metal context and driver
// allocations), the compute buffers of one prefill chunk (activations, attention partials,
// dequantization scratch), the logits buffer, the page tables and prefix index, the tokenizer
// and the allocator's slack. It is an estimate, not a measurement; it does not grow with the
// context because kvpack prefills in fixed-size chunks and attends over pages in place.
#include "kvpack/plan.h"
#include "base/error.h"
#include "base/units.h"

namespace kvpack::plan {

std::optional<uint64_t> kv_room(const ModelShape& model, uint64_t budget, uint64_t overhead) {
  const uint64_t fixed = model.weight_bytes + overhead;
  if (budget <= fixed) return std::nullopt;
  return budget - fixed;
}

Plan make_plan(const ModelShape& model, const format::KVPolicy& policy,
               const PlanOptions& options) {
  Plan p;
  p.policy = policy;
  p.kv = kv_footprint(model, policy, options.page_tokens);
  p.context = options.context > 0 ? options.context : model.native_context;
  if (p.context <= 0) fail("model {}: no context given and none known", model.name);
  p.kv_bytes = p.kv.session_bytes(p.context);
  p.weight_bytes = model.weight_bytes;
  p.overhead_bytes = options.overhead;
  p.total_bytes = p.weight_bytes + p.overhead_bytes + p.kv_bytes;
  if (!options.budget) return p;

  const uint64_t budget = options.budget->bytes;
  p.budget_bytes = budget;
  const auto room = kv_room(model, budget, options.overhead);
  if (!room) {
    fail(
        "budget {} cannot hold {}'s weights ({}) and the fixed overhead ({}); nothing is left for "
        "the KV cache",
        options.budget->label, model.name, format_bytes(static_cast<double>(model.weight_bytes)),
        format_bytes(static_cast<double>(options.overhead)));
  }
  p.max_context = p.kv.max_context(*room);
  p.sessions = static_cast<int64_t>(*room / p.kv_bytes);
  p.headroom = static_cast<int64_t>(budget) - static_cast<int64_t>(p.total_bytes);
  return p;
}

}  // namespace kvpack::plan
