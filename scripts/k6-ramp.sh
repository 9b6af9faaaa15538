#!/usr/bin/env bash
# The k6 ramp (k6/ramp.js) on this machine, over several k6 processes: each takes one
# --execution-segment of the run (one shared --execution-segment-sequence), its own source
# address (127.0.0.<10+i>, so no process runs out of ephemeral ports) and at most ~19k
# sockets (the file-descriptor limit). At the end the processes' summaries are summed: counts
# added, error rates weighted, each p99 the highest of the processes' (an upper bound: k6
# cannot merge percentiles of separate runs), and k6's peak RSS per socket.
#
#   scripts/k6-ramp.sh PROCESSES [k6 -e options…]
#   scripts/k6-ramp.sh 4 -e BASE_URL=http://127.0.0.1:8080 -e SOCKETS=40000 -e SOCKETS_PER_VU=500 \
#     -e SOCKETS_PER_USER=50 -e RAMP_SECONDS=60 -e HOLD_SECONDS=60
#
# K6_GATEWAYS="http://h1:8080,http://h2:8080" spreads the processes over several gateways
# round robin (process i gets BASE_URL = the (i mod n)-th); otherwise pass -e BASE_URL=….
#
# Output: a table on stdout, each process's summary and log in $K6_RAMP_DIR (default: a new
# directory under /var/tmp). Exits 0 when every process passed its thresholds, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

processes="${1:?usage: scripts/k6-ramp.sh PROCESSES [k6 -e options…]}"
shift
if ! [[ "$processes" =~ ^[0-9]+$ ]] || (( processes < 1 || processes > 64 )); then
  echo "PROCESSES must be 1–64, got $processes" >&2
  exit 2
fi
command -v k6 >/dev/null || { echo "k6 is not installed: run scripts/setup.sh" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
dir="${K6_RAMP_DIR:-$(mktemp -d /var/tmp/k6-ramp-XXXX)}"
mkdir -p "$dir"

# 0,1/P,2/P,…,1
sequence="0"
for ((i = 1; i <= processes; i++)); do sequence+=",$i/$processes"; done

IFS=',' read -r -a gateways <<<"${K6_GATEWAYS:-}"
pids=()
for ((i = 0; i < processes; i++)); do
  target=()
  (( ${#gateways[@]} > 0 )) && target=(-e "BASE_URL=${gateways[$((i % ${#gateways[@]}))]}")
  segment="$i/$processes:$((i + 1))/$processes"
  [[ $i -eq 0 ]] && segment="0:1/$processes"
  k6 run --quiet --no-color \
    --execution-segment "$segment" --execution-segment-sequence "$sequence" \
    --local-ips "127.0.0.$((10 + i))" \
    --summary-export "$dir/summary-$i.json" \
    "${target[@]}" "$@" k6/ramp.js >"$dir/k6-$i.log" 2>&1 &
  pids+=("$!")
done
echo "[k6-ramp] $processes k6 processes (pids ${pids[*]}), output in $dir" >&2

# Peak RSS and CPU time (utime + stime, clock ticks) of each process, sampled every second
# while it runs.
peaks=()
ticks=()
for _ in "${pids[@]}"; do peaks+=(0); ticks+=(0); done
while :; do
  alive=0
  for i in "${!pids[@]}"; do
    rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/${pids[$i]}/status" 2>/dev/null || true)"
    if [[ -n "$rss" ]]; then
      alive=1
      (( rss > peaks[i] )) && peaks[i]=$rss
      cpu="$(awk '{ print $14 + $15 }' "/proc/${pids[$i]}/stat" 2>/dev/null || true)"
      [[ -n "$cpu" ]] && ticks[i]=$cpu
    fi
  done
  (( alive )) || break
  sleep 1
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=1
  echo "${peaks[$i]}" >"$dir/peak-rss-kib-$i"
  echo "$(( ticks[i] / $(getconf CLK_TCK) ))" >"$dir/cpu-seconds-$i"
done

python3 scripts/k6-sum.py "$dir" "$processes"
exit "$status"
