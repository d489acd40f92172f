// The CPU backend: decode_batch and prefill on a thread pool, with one workspace reused across
// every layer and call.
#include "kvpack/attention.h"

namespace kvpack::attention {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(ThreadPool& pool) : pool_(pool) {}

  std::string_view name() const override { return "cpu"; }

  void decode(std::span<const cache::LayerView> views, const float* q, int n_q_heads, float* out,
              const Params& params) override {
    DecodeStats call;
    decode_batch(views, q, n_q_heads, out, params, pool_, ws_, &call);
    stats_.page_blocks += call.page_blocks;
    stats_.bytes += call.bytes;
  }

  void prefill(std::span<const PrefillSeq> seqs, int n_q_heads, const Params& params) override {
    // One sequence at a time: each call already spreads its (KV head, query tile) items over
    // the pool.
    for (const PrefillSeq& s : seqs) {
      attention::prefill(s.view, s.q, s.n_new, n_q_heads, s.out, params, pool_, ws_);
    }
  }

  size_t workspace_bytes() const override { return ws_.bytes(); }
  DecodeStats decode_stats() const override { return stats_; }

 private:
  ThreadPool& pool_;
  Workspace ws_;
  DecodeStats stats_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool) {
  return std::make_unique<CpuBackend>(pool);
}

}  // namespace kvpack::attention
