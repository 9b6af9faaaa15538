#!/usr/bin/env python3
"""Sums the summaries of the k6 processes of one run (scripts/k6-ramp.sh).

Usage: k6-sum.py DIR PROCESSES — reads DIR/summary-<i>.json, DIR/peak-rss-kib-<i> and
DIR/cpu-seconds-<i>.
Counters are added; the error rate is weighted by each process's samples; each p99 (and
max) is the highest of the processes' — k6 cannot merge percentiles of separate runs, so the
figure is an upper bound of the run's p99. Prints a Markdown table, and writes it as JSON to
DIR/sum.json.
"""
import json
import os
import sys

COUNTERS = ["chat_sockets_opened", "chat_acks", "chat_deliveries", "chat_gaps", "chat_repeats"]
TRENDS = ["chat_connect", "chat_send_ack", "chat_send_deliver"]


def main(directory, processes):
    summaries, peaks, cpu = [], [], []
    for i in range(processes):
        with open(os.path.join(directory, f"summary-{i}.json")) as f:
            summaries.append(json.load(f)["metrics"])
        with open(os.path.join(directory, f"peak-rss-kib-{i}")) as f:
            peaks.append(int(f.read().strip() or 0))
        with open(os.path.join(directory, f"cpu-seconds-{i}")) as f:
            cpu.append(int(f.read().strip() or 0))
    total = {name: sum(s.get(name, {}).get("count", 0) for s in summaries) for name in COUNTERS}
    # A Rate's non-zero samples are its "passes": here, the errors.
    errors = sum(s.get("chat_errors", {}).get("passes", 0) for s in summaries)
    samples = errors + sum(s.get("chat_errors", {}).get("fails", 0) for s in summaries)
    total["chat_errors_rate"] = errors / samples if samples else 0.0
    for name in TRENDS:
        for stat in ["med", "p(99)", "max"]:
            values = [s[name][stat] for s in summaries if name in s and stat in s[name]]
            total[f"{name} {stat} (ms)"] = round(max(values), 1) if values else None
    total["k6 peak RSS (MiB, all processes)"] = round(sum(peaks) / 1024, 1)
    sockets = total["chat_sockets_opened"]
    total["k6 RSS per socket (KiB)"] = round(sum(peaks) / sockets, 1) if sockets else None
    total["k6 CPU seconds (all processes)"] = sum(cpu)
    total["processes"] = processes
    with open(os.path.join(directory, "sum.json"), "w") as f:
        json.dump(total, f, indent=2)
    print("| figure | value |\n|---|---|")
    for name, value in total.items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
