// Shared pieces of the `kvpack eval` subcommands: the progress bar with an ETA, reading the text
// and the model, the default policy list, and emitting a report (terminal, --json, -o PREFIX).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "eval/report.h"
#include "kv_flags.h"
#include "kvpack/format.h"
#include "kvpack/model.h"

namespace kvpack::cli {

// Draws "[ppl] 12/40 (30%) q8/q8, 0:41 elapsed, ETA 1:35" on stderr: redrawn in place on a
// terminal, a line every 10 s otherwise; silent for the first second so short runs stay quiet.
class ProgressBar {
 public:
  ProgressBar(std::string name, bool enabled);
  ~ProgressBar();
  void operator()(int64_t done, int64_t total, std::string_view what);
  // Clears the bar's line (terminal) before the report is printed.
  void finish();

 private:
  std::string name_;
  bool enabled_;
  bool tty_;
  double start_;
  double last_ = 0;
  bool drawn_ = false;
};

// The options every eval subcommand has.
struct EvalCommon {
  std::string model;
  int threads = 0;
  int page_tokens = 32;
  bool json = false;
  std::string out;  // -o PREFIX
  bool quiet = false;

  void add_to(CLI::App* cmd);
};

// Loads the model and checks it has a tokenizer (every eval needs one).
std::unique_ptr<model::Model> load_model_with_tokenizer(const std::string& path);
std::string read_text_file(const std::string& path);
// The policies --kv / -ctk / -ctv name; without any, one per format that can serve the model's
// geometry (k=F,v=F, or k=F,v=f16 for K-only formats), each skipped format named on stderr.
std::vector<format::KVPolicy> eval_policies(const KvFlags& kv, const model::ModelSpec& hp,
                                            int page_tokens);
// Comma-separated items of repeatable list flags ("1k,4k" "16k" -> 1k, 4k, 16k).
std::vector<std::string> split_list(const std::vector<std::string>& flags);
// The command line of this process, as typed ("kvpack eval ppl -m ..."), for reports.
std::string command_line();
// Prints the report (text or JSON on stdout) and writes -o files, naming them on stderr.
void emit(const eval::Report& report, const EvalCommon& common);

}  // namespace kvpack::cli
