#!/usr/bin/env bash
# Runs the whole test suite: the web client's checks and build (scripts/web.sh), unit, property
# and end-to-end tests (the browser ones among them), then a short run of each fuzz target
# (scripts/fuzz.sh). End-to-end tests start real
# NATS (3 nodes), Postgres and Redis processes and the real binaries, one cell per test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The end-to-end tests run the gateway and worker binaries, which nextest does not build.
cargo build --workspace --bins
scripts/web.sh
cargo nextest run --workspace --no-fail-fast "$@"
scripts/fuzz.sh 20000
