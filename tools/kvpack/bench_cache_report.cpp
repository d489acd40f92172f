// `kvpack bench cache`'s report: the residency tables, the system prompt's copies, what
// compaction did, sliding windows' saving and the operation costs (docs/cli.md lists the fields).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json_text.h"
#include "base/table.h"
#include "base/units.h"
#include "bench_cache.h"

namespace kvpack::cli::cache_bench {

SlidingUse sliding_use(const cache::Residency& r) {
  SlidingUse u;
  for (const cache::GroupResidency& g : r.groups) {
    if (g.window == 0) continue;
    u.any = true;
    u.held += g.active.pages + g.shared.pages;
    u.released += g.released.pages;
  }
  return u;
}

namespace {

void print_json(const Report& x) {
  using nlohmann::ordered_json;
  ordered_json j = {
      {"config",
       {{"sessions", x.o.sessions},
        {"prefix_tokens", x.o.prefix},
        {"budget_bytes", parse_bytes(x.o.budget)},
        {"kv", x.policy.to_string()},
        {"model", x.o.model},
        {"layers", x.o.layers},
        {"kv_heads", x.o.kv_heads},
        {"head_dim", x.o.head_dim},
        {"layer_windows", x.o.layer_window},
        {"page_tokens", x.o.page_tokens},
        {"hp_window", x.o.window},
        {"turns", x.o.turns},
        {"user_tokens", x.o.user_tokens},
        {"gen_tokens", x.o.gen_tokens},
        {"fork_rate", x.o.fork_rate},
        {"end_rate", x.o.end_rate},
        {"seed", x.o.seed}}},
      {"workload",
       {{"turns", x.st.turns},
        {"forks", x.st.forks},
        {"ended", x.st.ended},
        {"preempted", x.st.preempted},
        {"recomputed_tokens", x.st.recomputed_tokens},
        {"seconds", x.st.seconds}}},
      {"sliding",
       {{"held_pages", sliding_use(x.r).held},
        {"released_pages", sliding_use(x.r).released},
        {"released_bytes", sliding_use(x.r).released * x.r.page_bytes}}},
      {"residency", ordered_json::parse(x.r.to_json())},
      {"prompt", {{"pages", x.prompt_pages()}, {"live_copies", x.copies}}},
      {"after_run",
       {{"sessions_ended", x.after.ended},
        {"compaction_pages_moved", x.after.moved},
        {"shrink_bytes_released", x.after.released}}},
      {"costs",
       {{"append_us_per_token_all_layers", x.token_append_us()},
        {"append_layer_rows_per_s", x.rows_per_s()},
        {"append_input_gbs", x.input_gbs()},
        {"copy_bandwidth_gbs", x.costs.copy_gbs},
        {"decode_append_us_per_token", x.costs.decode_us},
        {"decode_append_us_per_token_f16", x.costs.decode_f16_us},
        {"decode_append_input_gbs", x.decode_input_gbs()},
        {"encode_us_per_page_in_run", x.run_encode_us()},
        {"encode_us_per_page", x.costs.encode_us},
        {"encode_us_per_page_f16", x.costs.encode_f16_us}}},
  };
  std::printf("%s\n", json_text(j).c_str());
}

void print_text(const Report& x) {
  const auto& o = x.o;
  const auto& r = x.r;
  std::printf("kvpack bench cache: %d sessions sharing a %d-token prompt, --kv %s, budget %s\n",
              o.sessions, o.prefix, x.policy.to_string().c_str(), o.budget.c_str());
  int sliding = 0;
  for (int w : o.layer_window) sliding += w > 0;
  const std::string windows =
      sliding == 0 ? std::string()
                   : fmt::format(" ({} sliding, window {})", sliding,
                                 *std::max_element(o.layer_window.begin(), o.layer_window.end()));
  std::printf("model: %s%d layers%s x %d KV heads x head dim %d; %llu pages of %s (%zu group%s)\n",
              o.model.empty() ? "" : (o.model + ", ").c_str(), o.layers, windows.c_str(),
              o.kv_heads, o.head_dim, static_cast<unsigned long long>(r.reserved.pages),
              format_bytes(static_cast<double>(r.page_bytes)).c_str(), r.groups.size(),
              r.groups.size() == 1 ? "" : "s");
  std::printf(
      "workload (the server's scheduler): %llu turns (%d per session, user ~%d, reply ~%d tokens), "
      "%llu regenerated, %llu ended, %llu preempted (%llu tokens recomputed), %.2f s\n\n",
      static_cast<unsigned long long>(x.st.turns), o.turns, o.user_tokens, o.gen_tokens,
      static_cast<unsigned long long>(x.st.forks), static_cast<unsigned long long>(x.st.ended),
      static_cast<unsigned long long>(x.st.preempted),
      static_cast<unsigned long long>(x.st.recomputed_tokens), x.st.seconds);
  std::printf("%s\n", r.to_table().c_str());
  const SlidingUse sw = sliding_use(r);
  if (sw.any) {
    const uint64_t all = sw.held + sw.released;
    std::printf(
        "sliding windows: live sessions hold %llu pages of sliding layers where full attention "
        "would hold %llu: %s saved (%.1f%%)\n",
        static_cast<unsigned long long>(sw.held), static_cast<unsigned long long>(all),
        format_bytes(static_cast<double>(sw.released * r.page_bytes)).c_str(),
        all == 0 ? 0.0 : 100.0 * sw.released / all);
  }
  std::printf("system prompt: %llu pages (%s) held by %zu live sessions as %d cop%s\n",
              static_cast<unsigned long long>(x.prompt_pages()),
              format_bytes(static_cast<double>(x.prompt_pages() * r.page_bytes)).c_str(),
              static_cast<size_t>(x.after.live), x.copies, x.copies == 1 ? "y" : "ies");
  std::printf(
      "after ending %d of the %d live sessions: compact() moved %llu pages, shrink() released "
      "%s\n\n",
      x.after.ended, x.after.live, static_cast<unsigned long long>(x.after.moved),
      format_bytes(static_cast<double>(x.after.released)).c_str());
  Table t({"operation", "cost", "vs f16", "vs bandwidth"});
  t.align_left(0);
  const double bw = x.costs.copy_gbs;
  t.add_row({"decode append, one token, all layers", fmt::format("{:.1f} us", x.costs.decode_us),
             fmt::format("{:.2f}x", x.costs.decode_us / x.costs.decode_f16_us),
             fmt::format("{:.2f} GB/s f32 in: {:.1f}% of {:.1f} GB/s copy", x.decode_input_gbs(),
                         100 * x.decode_input_gbs() / bw, bw)});
  t.add_row({"encode one page, all layers", fmt::format("{:.1f} us", x.costs.encode_us),
             fmt::format("{:.2f}x", x.costs.encode_us / x.costs.encode_f16_us), ""});
  t.add_separator();
  t.add_row({"in the run: append, one token, all layers",
             fmt::format("{:.1f} us", x.token_append_us()), "",
             fmt::format("{:.2f} GB/s f32 in: {:.1f}%", x.input_gbs(), 100 * x.input_gbs() / bw)});
  t.add_row(
      {"in the run: layer rows appended", fmt::format("{:.3g} M/s", x.rows_per_s() / 1e6), "", ""});
  t.add_row({"in the run: encode one page (+ first-touch faults)",
             fmt::format("{:.1f} us", x.run_encode_us()), "", ""});
  std::printf("operation costs (cache only; K/V rows are not computed)\n%s", t.to_text().c_str());
}

}  // namespace

void print_report(const Report& x) {
  if (x.o.json) {
    print_json(x);
  } else {
    print_text(x);
  }
}

}  // namespace kvpack::cli::cache_bench
