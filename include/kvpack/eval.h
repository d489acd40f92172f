// Quality evaluation of K/V policies (src/eval), each measured on the model through the real
// engine (a paged cache per policy, attention over the compressed pages):
//
//   perplexity.h          perplexity and next-token KL divergence against a baseline policy
//   passkey.h             passkey retrieval (docs/passkey.md): prompt builder, answers, grid
//   attention_capture.h   a layer's q/k/v captured with an f32 cache, replayed under a policy
//   attention_fidelity.h  per-layer attention error, logit bias/spread, links, K vs V
//   policy_search.h       exact per-layer format search under a byte budget
//   policy_eval.h         sensitivity table -> search -> confirmation by KLD
//   report.h, svg_chart.h every report as text, Markdown, JSON and an SVG Pareto chart
//
//   auto model = model::Model::load("stories260K.gguf");
//   ThreadPool pool;
//   auto r = eval::evaluate_perplexity(*model, tokens, format::KVPolicy(), {q8}, options, pool);
//   eval::write_report("ppl", eval::render_perplexity(r, "kvpack eval ppl ..."));
#pragma once

#include "eval/attention_capture.h"
#include "eval/attention_fidelity.h"
#include "eval/passkey.h"
#include "eval/perplexity.h"
#include "eval/policy_cost.h"
#include "eval/policy_eval.h"
#include "eval/policy_search.h"
#include "eval/report.h"
#include "eval/svg_chart.h"
