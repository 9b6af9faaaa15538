#!/usr/bin/env bash
# The fault suite on this machine, one fault at a time, as a table: every scenario of
# cell/tests/faults.rs (kills, SIGSTOP, restarts, a rolling deploy) and cell/tests/partitions.rs
# (real partitions: NATS nodes in network namespaces, links cut, peers dropped, packets lost),
# each under the same pipelined send load, judged by the same checker. Needs root (namespaces)
# and nft; scripts/setup.sh installs the rest.
#
#   chaos/local/run.sh [nextest filter…]       e.g. chaos/local/run.sh partition
#
# Prints, per fault: acked sends, lost (acked but not stored, holes, unseen), duplicated,
# reordered, the clients' reconnects and resends, the recovery (the longest a client waited
# between two acks while the load ran: the worst client's and the median's), and for a
# partition how long the majority took to elect a new stream leader. The whole log is kept in $CHAOS_LOG_DIR (default: a new
# directory under /var/tmp). Exits non-zero if any scenario failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ "$(id -u)" -eq 0 ]] || { echo "chaos/local/run.sh needs root (network namespaces)" >&2; exit 2; }
scripts/setup.sh >&2
ulimit -n "$(ulimit -Hn)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/chat-cell-target}"
dir="${CHAOS_LOG_DIR:-$(mktemp -d /var/tmp/chaos-local-XXXX)}"
mkdir -p "$dir"
cargo build -q --workspace --bins
status=0
# One test at a time: each fault has the machine to itself, so its figures are its own.
cargo nextest run -p cell --test faults --test partitions --no-fail-fast --test-threads 1 \
  --no-capture "$@" >"$dir/suite.log" 2>&1 || status=$?
python3 - "$dir/suite.log" <<'PY'
import re
import sys

verdict = re.compile(
    r"^(?P<fault>.+?): acked (?P<acked>\d+) / lost (?P<lost>\d+) / duplicated (?P<dup>\d+) / "
    r"reordered (?P<reordered>\d+) .*? — (?P<reconnects>\d+) reconnects, (?P<resends>\d+) resends"
    r"(; longest wait for an ack (?P<gap>[\d.]+) s \(median client (?P<median>[\d.]+) s\))?"
)
election = re.compile(r"^partition: (\S+) elected in ([\d.]+)(m?s) after (\S+) was cut off")
rows, elected = [], None
for line in open(sys.argv[1], errors="replace"):
    if m := election.match(line):
        seconds = float(m[2]) / (1000 if m[3] == "ms" else 1)
        elected = f"new leader {m[1]} in {seconds:.1f} s"
    elif m := verdict.match(line):
        rows.append({**m.groupdict(), "note": elected or ""})
        elected = None
print("| fault | acked | lost | duplicated | reordered | reconnects | resends | "
      "longest wait for an ack, worst / median client (s) | note |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    wait = f"{r['gap']} / {r['median']}" if r["gap"] else "—"
    print(f"| {r['fault']} | {r['acked']} | {r['lost']} | {r['dup']} | {r['reordered']} | "
          f"{r['reconnects']} | {r['resends']} | {wait} | {r['note']} |")
failed = [l.split()[-1] for l in open(sys.argv[1], errors="replace") if l.lstrip().startswith("FAIL [")]
print(f"\n{len(rows)} scenarios judged; failed: {', '.join(sorted(set(failed))) or 'none'}")
PY
echo "(log: $dir/suite.log)"
exit "$status"
