#include "eval_common.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/timer.h"

namespace kvpack::cli {
namespace {

std::string clock_text(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

// Quotes an argument for a POSIX shell when it needs it.
std::string shell_quote(const std::string& a) {
  if (!a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_=.,/:+@%") == std::string::npos) {
    return a;
  }
  std::string q = "'";
  for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

ProgressBar::ProgressBar(std::string name, bool enabled)
    : name_(std::move(name)),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(now_seconds()) {}

ProgressBar::~ProgressBar() {
  finish();
}

void ProgressBar::operator()(int64_t done, int64_t total, std::string_view what) {
  if (!enabled_ || total <= 0) return;
  const double now = now_seconds(), elapsed = now - start_;
  if (elapsed < 1.0 || (done < total && now - last_ < (tty_ ? 0.25 : 10.0))) return;
  last_ = now;
  const double eta = done > 0 ? elapsed * static_cast<double>(total - done) / done : 0;
  const std::string line =
      fmt::format("[{}] {}/{} ({:.0f}%) {}, {} elapsed, ETA {}", name_, done, total,
                  100.0 * done / total, what, clock_text(elapsed), clock_text(eta));
  if (tty_) {
    std::fprintf(stderr, "\r%-100s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_ && tty_) std::fprintf(stderr, "\r%-100s\r", "");
  drawn_ = false;
}

void EvalCommon::add_to(CLI::App* cmd) {
  cmd->add_option("-m,--model", model, "GGUF model file (with a tokenizer)")->required();
  cmd->add_option("-t,--threads", threads, "Threads (0: one per core)")->capture_default_str();
  cmd->add_option("--page-tokens", page_tokens, "Tokens per KV page")
      ->capture_default_str()
      ->check(CLI::Range(16, 256));
  cmd->add_flag("--json", json, "Print the report as JSON instead of tables");
  cmd->add_option("-o,--output", out,
                  "Also write the report as PREFIX.md, PREFIX.json and PREFIX.svg")
      ->type_name("PREFIX");
  cmd->add_flag("-q,--quiet", quiet, "No progress bar");
}

std::unique_ptr<model::Model> load_model_with_tokenizer(const std::string& path) {
  auto model = model::Model::load(path);
  if (model->tokenizer() == nullptr) {
    fail("{}: has no tokenizer (tokenizer.ggml.model is absent or 'none'); kvpack eval needs one",
         path);
  }
  return model;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read the text file '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<format::KVPolicy> eval_policies(const KvFlags& kv, const model::ModelSpec& hp,
                                            int page_tokens) {
  std::vector<format::KVPolicy> out = kv.policies({});
  if (!out.empty()) return out;
  for (const format::FormatInfo& f : format::all_formats()) {
    const format::FormatId v = f.supports(format::Role::V) ? f.id : format::FormatId::f16;
    const format::KVPolicy p(f.id, v);
    try {
      p.validate(hp.n_layers(), hp.head_dim_k, hp.head_dim_v, page_tokens);
      out.push_back(p);
    } catch (const Error& e) {
      std::fprintf(stderr, "kvpack: skipping a format: %s\n", e.what());
    }
  }
  return out;
}

std::vector<std::string> split_list(const std::vector<std::string>& flags) {
  std::vector<std::string> out;
  for (const auto& f : flags) {
    std::string_view rest = f;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      if (comma != 0) out.emplace_back(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return out;
}

std::string command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string out;
  size_t at = 0;
  for (int i = 0; at < all.size(); ++i) {
    const size_t end = all.find('\0', at);
    const std::string arg = all.substr(at, end == std::string::npos ? end : end - at);
    out += i == 0 ? std::string("kvpack") : " " + shell_quote(arg);
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out.empty() ? "kvpack eval" : out;
}

void emit(const eval::Report& report, const EvalCommon& common) {
  if (common.json) {
    std::printf("%s\n", report.json.dump(2).c_str());
  } else {
    std::printf("%s", report.text.c_str());
  }
  std::fflush(stdout);
  if (!common.out.empty()) {
    const auto paths = eval::write_report(common.out, report);
    std::fprintf(stderr, "kvpack: wrote %s, %s, %s\n", paths[0].c_str(), paths[1].c_str(),
                 paths[2].c_str());
  }
}

}  // namespace kvpack::cli
