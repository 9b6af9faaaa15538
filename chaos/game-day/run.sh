#!/usr/bin/env bash
# One game day against a cell in a cluster, with k6's load beside the checker's: starts the
# k6-operator TestRun (k6/testrun.yaml: the ramp to 100k sockets, ~20 min) and the game-day
# Workflow (kubectl apply -k chaos/) together, waits for the Workflow to finish, and exits
# with the checker's verdict: 0 when loadgen's run and audit were clean, 1 when not (or when
# the checker never finished). Chaos Mesh's Workflow has no failed state of its own, so the
# checker pod's exit code is the verdict; the k6 TestRun's stage is printed beside it (its
# thresholds are in its runners' logs).
#
#   chaos/game-day/run.sh [--namespace chat-dev] [--no-k6] [--timeout-minutes 40]
#
# Needs kubectl on the cluster, Chaos Mesh 2.8 and (unless --no-k6) the k6-operator with the
# chat-k6-ramp ConfigMap made as k6/testrun.yaml says. A previous run's Workflow and TestRun
# are deleted first.
set -euo pipefail

namespace=chat-dev
with_k6=1
timeout_minutes=40
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace="$2"; shift 2 ;;
    --no-k6) with_k6=0; shift ;;
    --timeout-minutes) timeout_minutes="$2"; shift 2 ;;
    *) echo "usage: $0 [--namespace NS] [--no-k6] [--timeout-minutes M]" >&2; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
workflow=cell-game-day
testrun=chat-ramp-100k
k() { kubectl -n "$namespace" "$@"; }

k delete workflow "$workflow" --ignore-not-found --wait
if [ "$with_k6" = 1 ]; then
  k delete testrun "$testrun" --ignore-not-found --wait
  k apply -f "$repo/k6/testrun.yaml"
fi
# The game day and its checker's network access; the kustomization names its namespace
# (chat-dev): another cell's copy names its own (chaos/kustomization.yaml).
kubectl apply -k "$repo/chaos"

deadline=$(( $(date +%s) + timeout_minutes * 60 ))
accomplished=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  accomplished=$(k get workflow "$workflow" \
    -o jsonpath='{.status.conditions[?(@.type=="Accomplished")].status}' 2>/dev/null || true)
  [ "$accomplished" = True ] && break
  sleep 15
done
[ "$accomplished" = True ] || echo "game day: the workflow did not finish within $timeout_minutes min" >&2

checker=$(k get pods -l app.kubernetes.io/name=chat-checker \
  --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}')
code=""
if [ -n "$checker" ]; then
  code=$(k get pod "$checker" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
  echo "--- checker $checker (the end of its log) ---"
  k logs "$checker" --tail=30 || true
fi
if [ "$with_k6" = 1 ]; then
  echo "k6 TestRun $testrun: stage $(k get testrun "$testrun" -o jsonpath='{.status.stage}' 2>/dev/null || echo '?')"
fi
case "$code" in
  0) echo "game day: verdict clean"; exit 0 ;;
  "") echo "game day: the checker did not finish" >&2; exit 1 ;;
  *) echo "game day: verdict NOT clean (checker exit $code)" >&2; exit 1 ;;
esac
