// The bad-input contract (docs/cli.md) over every subcommand and flag class, as a table: each
// row is a command line a careless or hostile user could type, the exit status it must end
// with (1: bad input, 2: a flag the command line cannot parse) and a part of its one error line.
// Several rows once ended in an abort, a signal, a hang or a silent default; they are marked.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_fixtures.h"
#include "cli_run.h"
#include "shared_data.h"

namespace kvpack::testing {
namespace {

struct Case {
  const char* args;  // @M: stories260K.gguf, @T: a text file, @D: a scratch folder
  int status;
  const char* part;
};

std::string expand(std::string s, const std::string& model, const std::string& text,
                   const std::string& dir) {
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@M", model}, {"@T", text}, {"@D", dir}}) {
    for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at)) {
      s.replace(at, key.size(), shell_quote(value));
    }
  }
  return s;
}

void expect_cases(const std::vector<Case>& cases) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const ScratchDir dir("bad_flags");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    expect_one_line_error(expand(c.args, model.string(), text.string(), dir.path().string()),
                          c.part, c.status, "timeout 60");
  }
}

// Thread counts: -t 40000 aborted (thread creation failed), -t 1000 started 1000 threads.
TEST(BadFlagsCli, ThreadCountsAreBoundedOnEveryCommand) {
  expect_cases({
      {"run -m @M -p hi -t 40000", 1, "-t 40000: expected 1 to"},
      {"run -m @M -p hi -t 1000", 1, "per hardware thread"},
      {"run -m @M -p hi -t -2", 1, "-t -2"},
      {"demo -m @M -t 1000", 1, "-t 1000"},
      {"bench decode -m @M -t 1000", 1, "-t 1000"},
      {"bench attention --context 1k -t 1000", 1, "-t 1000"},
      {"eval ppl -m @M -f @T -t 1000", 1, "-t 1000"},
      {"eval passkey -m @M -t 1000", 1, "-t 1000"},
      {"eval attention -m @M -f @T -t 1000", 1, "-t 1000"},
      {"eval policy -m @M -f @T --bits 6 -t 1000", 1, "-t 1000"},
      {"serve -m @M --port 0 -t 1000", 1, "-t 1000"},
      {"run -m @M -p hi -t abc", 2, "--threads"},
  });
}

// Sampling: NaN and out-of-range values were accepted, -n -1 generated nothing, seeds clamped.
TEST(BadFlagsCli, SamplingParametersAreChecked) {
  expect_cases({
      {"run -m @M -p hi --temp nan", 1, "--temp nan"},
      {"run -m @M -p hi --temp inf", 1, "--temp inf"},
      {"run -m @M -p hi --repeat-penalty 0", 1, "--repeat-penalty 0"},
      {"run -m @M -p hi --repeat-penalty -1", 1, "--repeat-penalty -1"},
      {"run -m @M -p hi --repeat-penalty nan", 1, "--repeat-penalty nan"},
      {"run -m @M -p hi --top-p 1.5", 1, "--top-p 1.5"},
      {"run -m @M -p hi --top-p -0.1", 1, "--top-p -0.1"},
      {"run -m @M -p hi --min-p 2", 1, "--min-p 2"},
      {"run -m @M -p hi --min-p nan", 1, "--min-p nan"},
      {"run -m @M -p hi --repeat-last-n -5", 1, "--repeat-last-n -5"},
      {"run -m @M -p hi -n -2", 1, "-n -2"},
      {"run -m @M -p hi --seed 99999999999999999999", 2, "--seed"},
      {"run -m @M -p hi --seed -2", 2, "--seed"},
      {"run -m @M -p hi --seed 0x10", 2, "--seed"},
      {"eval passkey -m @M --seed -1", 2, "--seed"},
      {"bench cache --seed 18446744073709551616", 2, "--seed"},
      {"dev synth-model --out @D/x.gguf --seed -1", 2, "--seed"},
  });
}

// Empty values: some were errors, some silently the default (-c '', --budget '', -ctk '').
TEST(BadFlagsCli, EmptyValuesAreFlagErrors) {
  expect_cases({
      {"run -m @M -p hi -c ''", 2, "-c: empty value"},
      {"run -m @M -p hi -f ''", 2, "-f: empty value"},
      {"run -m '' -p hi", 2, "-m: empty value"},
      {"plan --preset qwen3-8b --budget ''", 2, "--budget: empty value"},
      {"plan --preset qwen3-8b --kv=", 2, "--kv: empty value"},
      {"plan --preset qwen3-8b -ctk ''", 2, "empty value"},
      {"eval passkey -m @M --lengths ''", 2, "--lengths: empty value"},
      {"inspect ''", 2, "empty"},
      {"--simd '' formats", 2, "--simd: empty value"},
      {"dev synth-model --out ''", 2, "--out: empty value"},
  });
}

// Floating-point flags: NaN passed CLI::Range (bench cache ran forever on --fork-rate nan).
TEST(BadFlagsCli, FloatingPointFlagsAreFinite) {
  expect_cases({
      {"bench cache --fork-rate nan", 2, "--fork-rate"},
      {"bench cache --end-rate inf", 2, "--end-rate"},
      {"bench attention --min-time nan", 2, "--min-time"},
      {"demo -m @M -d nan", 2, "--depth"},
      {"plan --preset qwen3-8b --weights-bits nan", 2, "--weights-bits"},
      {"eval policy -m @M -f @T --bits nan", 2, "--bits"},
      {"dev synth-model --out @D/x.gguf --rope-base nan", 2, "--rope-base"},
      {"dev synth-model --out @D/x.gguf --rope-base 0", 2, "--rope-base"},
      {"serve -m @M --port 0 --grace nan", 2, "--grace"},
  });
}

// Sizes and counts: a layer range was expanded before it was checked (a 79 MB error line),
// --context 0 divided by zero (SIGFPE), huge sessions or contexts ran for hours or reserved
// terabytes.
TEST(BadFlagsCli, ResourceRequestsAreBoundedUpFront) {
  expect_cases({
      {"plan --preset qwen3-8b --kv 'k=q8;0..10000000:k=f16'", 1,
       "layer 10000000 is beyond the 4096 layers"},
      {"plan --preset qwen3-8b --kv 'k=q8;-2147483648..-1:k=f16'", 1, "is beyond"},
      {"plan --preset qwen3-8b --kv "
       "'k=q8;0..4095:k=f16;0..4095:k=f16;0..4095:k=f16;0..4095:k=f16;0..4095:k=f16'",
       1, "more than 16384 layer indices"},
      {"plan --preset qwen3-8b --kv 'k=q8;99999999999:k=f16'", 1, "expected a layer index"},
      {"plan --preset qwen3-8b --context 2000000000", 1, "--context 2000000000: expected 1 to 16M"},
      {"plan --preset qwen3-8b --context 0", 1, "--context 0"},
      {"run -m @M -p hi -c 2000000000", 1, "-c 2000000000"},
      {"bench attention --context 0", 1, "--context 0"},
      {"bench attention --context 1k,99999M", 1, "--context"},
      {"bench attention --context 1k --max-memory 1000TiB", 1, "more than this machine's"},
      {"bench cache --budget 1000TiB", 1, "more than this machine's"},
      {"bench cache --sessions 100000", 2, "--sessions"},
      {"bench cache --prefix 2000000000", 2, "--prefix"},
      {"bench cache --user-tokens 2000000000", 2, "--user-tokens"},
      {"bench cache --turns 0", 2, "--turns"},
      {"bench cache --layers 0", 2, "--layers"},
      {"bench attention --heads 0", 2, "--heads"},
      {"bench attention --head-dim 100000", 2, "--head-dim"},
      {"demo -m @M -l 99999M", 1, "-l"},
      {"eval passkey -m @M --lengths 1k,99999999999", 1, "99999999999"},
      {"dev synth-model --out @D/x.gguf --embd 1000000 --vocab 1000000", 1, "this machine has"},
      {"dev synth-model --out @D/x.gguf --layers 0", 1, "every size must be positive"},
      {"dev synth-model --out @D/x.gguf --ctx 99999M", 1, "--ctx"},
  });
}

// Flag syntax: one line with a --help hint (CLI11 printed two), status 2.
TEST(BadFlagsCli, SyntaxErrorsAreOneLineWithStatus2) {
  expect_cases({
      {"", 2, "subcommand"},
      {"frobnicate", 2, "unknown command 'frobnicate'"},
      {"formats --page-tokens 8", 2, "--page-tokens: Value 8 not in range 16 to 256"},
      {"formats --bogus", 2, "--bogus"},
      {"run -m @M -m @M -p hi", 2, "--model"},
      {"run -p hi", 2, "--model is required"},
      {"run -m @M -p hi -f @T", 2, "excludes"},
      {"plan --preset qwen3-8b --page-tokens 1e3", 2, "--page-tokens"},
      {"inspect @M --max-items -1", 2, "--max-items"},
      {"eval ppl -m @M -f @T --chunks -1", 2, "--chunks"},
      {"bench decode -m @M -n 0", 2, "--n-gen"},
  });
  const CliResult r = run_kvpack("formats --page-tokens 8");
  EXPECT_NE(r.err.find("(see kvpack formats --help)"), std::string::npos) << r.err;
}

// Values kvpack parses itself.
TEST(BadFlagsCli, ValuesAreCheckedAsWritten) {
  expect_cases({
      {"plan --preset qwen3-8b --budget -16GiB", 1, "--budget '-16GiB'"},
      {"plan --preset qwen3-8b --budget 16XB", 1, "unknown unit"},
      {"plan --preset qwen3-8b --budget 0", 1, "above zero"},
      {"plan --preset qwen3-8b --budget 99999999999999TB", 1, "too large"},
      {"plan --preset qwen3-8b --kv k=q9", 1, "unknown KV format 'q9'"},
      {"plan --preset qwen3-8b --kv 'k=q8;5..2:k=f16'", 1, "a <= b"},
      {"plan --preset qwen3-8b --kv 'k=q8;-3..2:k=f16'", 1, "a <= b"},
      {"plan --preset qwen3-8b --kv 'k=q8;36:k=f16'", 1, "layer 36 does not exist"},
      {"plan --preset nope", 1, "nope"},
      {"run -m @M -p hi -c 1.5", 1, "not a whole number"},
      {"eval passkey -m @M --depths 50,nan", 1, "--depths: 'nan'"},
      {"bench decode -m @M --fill both", 1, "--fill 'both'"},
      {"--simd avx9000 formats", 1, "avx9000"},
  });
}

}  // namespace
}  // namespace kvpack::testing
