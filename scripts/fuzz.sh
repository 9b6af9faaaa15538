#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (cargo-fuzz, libFuzzer, nightly) for RUNS inputs, from its
# seeds (fuzz/seeds/<target>, committed) and the corpus it grew before (fuzz/corpus/<target>,
# not committed); exits non-zero on the first finding, which libFuzzer leaves in
# fuzz/artifacts/<target>/ (replay it: cargo +nightly fuzz run <target> <file>). Prints each
# target's executions, speed and coverage.
#
#   scripts/fuzz.sh              # 20,000 inputs per target, as the test suite runs it
#   scripts/fuzz.sh 1000000      # the long run of docs/security.md, "Fuzzing"
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-20000}"
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "RUNS must be a number, got $runs" >&2; exit 2; }
# Instrumented builds of their own, beside the workspace's target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target}-fuzz"
for target in decode_frame parse_mentions clean_filename; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -runs="$runs" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target found a failing input (fuzz/artifacts/$target/)" >&2
    rm -f "$log"
    exit 1
  fi
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)"
  echo "fuzz: $target: $runs runs, no finding; $(grep -o 'cov: [0-9]*' <<<"$done_line"), $(grep -o 'corp: [0-9]*' <<<"$done_line")"
  rm -f "$log"
done
