// Each subcommand lives in its own file and adds itself to the app through one function here.
#pragma once

#include <CLI/CLI.hpp>

namespace kvpack::cli {

void add_formats_command(CLI::App& app);
void add_bench_command(CLI::App& app);  // parent of `bench cache`, `bench attention`, ...
void add_bench_cache_command(CLI::App& bench);
void add_bench_attention_command(CLI::App& bench);  // bench_attention.cpp
void add_plan_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_run_command(CLI::App& app);              // run.cpp
void add_dev_command(CLI::App& app);              // dev.cpp: dev synth-model
void add_bench_decode_command(CLI::App& bench);   // bench_decode.cpp
void add_eval_command(CLI::App& app);             // eval.cpp: parent of the four below
void add_eval_ppl_command(CLI::App& eval);        // eval_ppl.cpp
void add_eval_passkey_command(CLI::App& eval);    // eval_passkey.cpp
void add_eval_attention_command(CLI::App& eval);  // eval_attention.cpp
void add_eval_policy_command(CLI::App& eval);     // eval_policy.cpp
void add_demo_command(CLI::App& app);             // demo.cpp: the probe model's passkey, per policy
void add_serve_command(CLI::App& app);            // serve.cpp: the OpenAI-compatible server

}  // namespace kvpack::cli
