#!/usr/bin/env bash
# Profiles one process of a local broadcast run: `perf record` (DWARF call graphs) for 10 s once
# every socket is connected, then a flamegraph (inferno) and the top symbols. The binaries
# should be a release build with line tables, so the stacks have names:
#
#   CARGO_TARGET_DIR=/var/tmp/chat-prof CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#       cargo build --release -p gateway -p messages -p loadgen --bins
#   cargo install inferno            # inferno-collapse-perf, inferno-flamegraph
#   scripts/profile-broadcast.sh /var/tmp/chat-prof/release gateway 2000 300 /tmp/prof
#
# Arguments: the binaries' directory, what to profile (gateway or loadgen), members, msg/s,
# and the output directory (perf.data, .folded, .svg, top.txt, the run's log and JSON).
set -euo pipefail
bin=${1:?binaries directory}; bin=${bin%/}; what=${2:?gateway or loadgen}; members=${3:-2000}; rate=${4:-300}
out=${5:-/tmp/profile-broadcast}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"
CHAT_BIN_DIR=$bin "$bin/loadgen" --local --scenario broadcast --members "$members" --senders 1 \
    --rate "$rate" --duration 25 --message-bytes 200 --out "$out/run.json" >"$out/run.log" 2>&1 &
loadgen=$!
pid=""
for _ in $(seq 1 900); do
    gateway=$(pgrep -f "^$bin/gateway" | head -1 || true)
    if [ -n "$gateway" ] && [ "$(find "/proc/$gateway/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -gt "$members" ]; then
        pid=$([ "$what" = loadgen ] && echo "$loadgen" || echo "$gateway")
        break
    fi
    sleep 1
done
[ -n "$pid" ] || { echo "the sockets never connected; see $out/run.log" >&2; kill "$loadgen"; exit 1; }
sleep 4 # the sends have started
perf record -F 499 --call-graph dwarf,8192 -p "$pid" -o "$out/perf.data" -- sleep 10
wait "$loadgen" || echo "loadgen exited with $?" >&2
perf script -i "$out/perf.data" 2>/dev/null | inferno-collapse-perf >"$out/$what.folded"
inferno-flamegraph <"$out/$what.folded" >"$out/$what.svg"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep '%' | head -30 >"$out/top.txt"
cat "$out/top.txt"
echo "flamegraph: $out/$what.svg; the run: $out/run.log"
