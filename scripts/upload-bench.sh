#!/usr/bin/env bash
# Times uploads and downloads of a 24 MiB file against a local release cell (its data in a
# fresh directory, the gateway on port 18080), and the gateway's peak resident memory over them.
# Build first:
#   CARGO_TARGET_DIR=/var/tmp/chat-release cargo build --release --bins -p gateway -p messages -p cell
# then: scripts/upload-bench.sh [release dir, default /var/tmp/chat-release/release]
set -euo pipefail
rel="${1:-/var/tmp/chat-release/release}"
dir="$(mktemp -d)"
chmod 755 "$dir"  # Postgres runs as the postgres user
"$rel/cell" --dir "$dir/cell" --port 18080 --bin-dir "$rel" > "$dir/cell.log" 2>&1 &
cell=$!
trap 'kill $cell; wait $cell 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:18080/health >/dev/null 2>&1 && break; sleep 1; done
api=http://127.0.0.1:18080/api/v1
token=$(curl -sf -X POST "$api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","username":"bench","password":"benchbench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
head -c $((24*1024*1024)) /dev/urandom > "$dir/24m.bin"
gw=$(pgrep -f "$rel/gateway" | head -1)
echo "gateway rss before: $(grep VmRSS "/proc/$gw/status")"
for _ in 1 2 3; do
  out=$(curl -sf -w '\n%{time_total} %{speed_upload}' -H "authorization: Bearer $token" -F "file=@$dir/24m.bin" "$api/upload")
  id=$(echo "$out" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  read -r t s <<<"$(echo "$out" | tail -1)"
  d=$(curl -sf -o /dev/null -w '%{time_total} %{speed_download}' -H "authorization: Bearer $token" "$api/upload/$id")
  echo "upload 24 MiB: ${t}s ($(python3 -c "print(round($s/1048576,1))") MiB/s); download: $d"
done
echo "gateway peak rss: $(grep VmHWM "/proc/$gw/status"); now $(grep VmRSS "/proc/$gw/status")"
