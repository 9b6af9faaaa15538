#!/usr/bin/env bash
# The web client's checks (web/): its packages from the lock file, its API types current with
# web/openapi.json (cell/tests/openapi.rs holds that file to the gateway's document), the
# type check, the unit tests, then its build (web/dist, for cell/tests/web_e2e.rs). `scripts/web.sh api` regenerates both from the gateway instead.
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
if [ "${1:-}" = "api" ]; then
  target_dir=$(cd .. && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  (cd .. && cargo build -q --bin gateway)
  "$target_dir/debug/gateway" openapi > openapi.json
  npm run -s api
  exit 0
fi
npm run -s api:check
npm run -s typecheck
npm test --silent
# The built client, which the gateway serves and cell/tests/web_e2e.rs drives in Chromium.
npm run -s build >/dev/null
