#!/usr/bin/env bash
# Runs a complete local cell: 3 NATS JetStream nodes, Postgres, Redis, a gateway and a message
# worker, as local processes with their data in .cell/ (history survives restarts). Prints the
# URLs; Ctrl-C stops everything. Arguments go to the `cell` binary (e.g. --gateways 2 --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build -q --bin gateway --bin messages --bin cell
# The web client, served by the gateway at / (one origin for the pages, the API and the socket).
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run -s build >/dev/null)
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/debug/cell" --bin-dir "$target_dir/debug" --web-dir web/dist "$@"
