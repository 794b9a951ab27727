#!/usr/bin/env python3
"""Per-kernel GPU time of an ncu run (tests/gpu/session.sh): sums `ncu --csv --metrics
gpu__time_duration.sum` rows by kernel name and prints them largest first, with the
launch count and the share of the total.

    python3 bench/kernel_table.py ncu.csv
"""
import csv
import sys
from collections import defaultdict


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"kernel_table.py: {sys.argv[1]}: no ncu CSV header (\"ID\",...) found")
    total_ns, launches = defaultdict(float), defaultdict(int)
    for row in csv.DictReader(lines[start:]):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}[row["Metric Unit"]]
        name = row["Kernel Name"].removeprefix("void ").split("(")[0].split("<")[0]
        total_ns[name] += value * scale
        launches[name] += 1
    grand = sum(total_ns.values())
    if not grand:
        sys.exit(f"kernel_table.py: {sys.argv[1]}: no gpu__time_duration rows")
    print(f"{sum(launches.values())} launches, {grand / 1e6:.3f} ms of kernel time")
    print(f"{'kernel':60s} {'launches':>8s} {'ms':>9s} {'share':>7s}")
    for name, ns in sorted(total_ns.items(), key=lambda kv: -kv[1]):
        print(f"{name[:60]:60s} {launches[name]:8d} {ns / 1e6:9.3f} {100 * ns / grand:6.1f}%")


if __name__ == "__main__":
    main()
