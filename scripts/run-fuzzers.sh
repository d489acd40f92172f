#!/usr/bin/env bash
# Runs every libFuzzer target (BUILD/fuzz/fuzz_*) for a bounded time (FUZZ_SECONDS each, default 60)
# on a seed corpus that gguf_seeds writes with the GGUF writer (nothing is committed). Inputs
# the fuzzer finds interesting accumulate in BUILD/fuzz-work/corpus/<fuzzer> across runs; a
# crash stops the script with a non-zero status and leaves its reproducer in
# BUILD/fuzz-work/artifacts (replay it with `BUILD/fuzz/<fuzzer> <file>`).
# Usage: scripts/run-fuzzers.sh build/fuzz    (`make fuzz` builds the targets first)
set -euo pipefail
build=${1:?usage: scripts/run-fuzzers.sh BUILD_DIR}
seconds=${FUZZ_SECONDS:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/fuzz
work=$build/fuzz-work

shopt -s nullglob
fuzzers=("$bin"/fuzz_*)
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "run-fuzzers: no fuzz_* binaries in $bin (build with: make fuzz)" >&2
  exit 1
fi

rm -rf "$work/seeds"
mkdir -p "$work/seeds/fuzz_gguf" "$work/artifacts"
"$bin/gguf_seeds" "$work/seeds/fuzz_gguf"

for fuzzer in "${fuzzers[@]}"; do
  name=$(basename "$fuzzer")
  corpus=$work/corpus/$name
  mkdir -p "$corpus"
  dict=$root/fuzz/${name#fuzz_}.dict
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-")
  [[ -f $dict ]] && args+=(-dict="$dict")
  echo "run-fuzzers: $name for ${seconds}s"
  start=$(date +%s)
  # Seeds: generated ones (build/fuzz-work/seeds/<fuzzer>) and committed ones (fuzz/corpus/<name>).
  seeds=()
  [[ -d $work/seeds/$name ]] && seeds+=("$work/seeds/$name")
  [[ -d $root/fuzz/corpus/${name#fuzz_} ]] && seeds+=("$root/fuzz/corpus/${name#fuzz_}")
  if ! "$fuzzer" "${args[@]}" "$corpus" "${seeds[@]}" >"$work/$name.log" 2>&1; then
    tail -n 60 "$work/$name.log" >&2
    echo "run-fuzzers: $name FAILED; reproducer(s) in $work/artifacts" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$work/$name.log" | tr '\n' ' '
  echo "-> passed in $(( $(date +%s) - start )) s, corpus $(ls "$corpus" | wc -l) files"
done
