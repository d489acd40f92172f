#!/usr/bin/env bash
# Runs every libFuzzer target (BUILD/fuzz/fuzz_*) for a bounded time (FUZZ_SECONDS each, default
# 60; FUZZ_JOBS at a time, default one per core) on generated seeds (gguf_seeds writes GGUF files
# with the GGUF writer) and the committed ones in fuzz/corpus. Inputs the fuzzer finds
# interesting accumulate in BUILD/fuzz-work/corpus/<fuzzer> across runs; a crash ends the script
# with a non-zero status and leaves its reproducer in BUILD/fuzz-work/artifacts (replay it with
# `BUILD/fuzz/<fuzzer> <file>`).
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

# One fuzzer: FUZZ_SECONDS on its corpus; a crash prints the log's tail and fails.
run_one() {
  local fuzzer=$1 name corpus dict start
  name=$(basename "$fuzzer")
  corpus=$work/corpus/$name
  mkdir -p "$corpus"
  dict=$root/fuzz/${name#fuzz_}.dict
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
              -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-")
  [[ -f $dict ]] && args+=(-dict="$dict")
  start=$(date +%s)
  # Seeds: generated ones (build/fuzz-work/seeds/<fuzzer>) and committed ones (fuzz/corpus/<name>).
  local seeds=()
  [[ -d $work/seeds/$name ]] && seeds+=("$work/seeds/$name")
  [[ -d $root/fuzz/corpus/${name#fuzz_} ]] && seeds+=("$root/fuzz/corpus/${name#fuzz_}")
  if ! "$fuzzer" "${args[@]}" "$corpus" "${seeds[@]}" >"$work/$name.log" 2>&1; then
    tail -n 60 "$work/$name.log" >&2
    echo "run-fuzzers: $name FAILED; reproducer(s) in $work/artifacts" >&2
    return 1
  fi
  echo "run-fuzzers: $name: $(grep -E '^stat::(number_of_executed_units|peak_rss_mb)' \
    "$work/$name.log" | tr '\n' ' ')-> passed in $(($(date +%s) - start)) s, corpus \
    $(ls "$corpus" | wc -l) files"
}

# FUZZ_JOBS fuzzers at a time (default: one per core), each single-threaded.
jobs=${FUZZ_JOBS:-$(nproc)}
echo "run-fuzzers: ${#fuzzers[@]} fuzzers, ${seconds}s each, $jobs at a time"
pids=()
failed=0
for fuzzer in "${fuzzers[@]}"; do
  run_one "$fuzzer" &
  pids+=($!)
  if ((${#pids[@]} >= jobs)); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit "$failed"
