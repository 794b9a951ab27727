#!/usr/bin/env python3
"""Per-kernel GPU time of an ncu run (tests/gpu/session.sh): sums `ncu --csv --metrics
gpu__time_duration.sum` rows by kernel name and prints them largest first, with the
launch count and the share of the total.

    python3 bench/kernel_table.py ncu.csv

One training step: a step ends with the AdamW launch(es) (one fused launch, or a run of
consecutive ones), so when the capture holds two such ends, only the launches after the
first end up to the second are summed: exactly one step, whatever the launch counts of
start-up and of the step. Otherwise every captured launch is summed, and the table says so.
"""
import csv
import re
import sys
from collections import defaultdict

STEP_END = re.compile(r"adamw", re.IGNORECASE)  # adamw_kernel, elementwise_kernel<Adamw>


def kernel_name(row):
    """The kernel's name with its template arguments (elementwise_kernel<Adamw> and
    elementwise_kernel<Gelu> are different kernels), without namespaces, return type and
    parameter list."""
    full = row["Kernel Name"].replace("(anonymous namespace)::", "").removeprefix("void ")
    depth = 0
    for i, ch in enumerate(full):  # the parameter list: the first "(" outside <...>
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "(" and depth == 0:
            return full[:i]
    return full


def one_step(rows):
    """rows from the end of the first optimizer step through the end of the second, or None."""
    ends = [i for i, r in enumerate(rows) if STEP_END.search(kernel_name(r))]
    runs = []  # (first, last) index of each run of consecutive optimizer launches
    for i in ends:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    if len(runs) < 2:
        return None
    return rows[runs[0][1] + 1:runs[1][1] + 1]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"kernel_table.py: {sys.argv[1]}: no ncu CSV header (\"ID\",...) found")
    rows = [r for r in csv.DictReader(lines[start:]) if r.get("Metric Name") == "gpu__time_duration.sum"]
    step = one_step(rows)
    if step is None:
        print(f"note: fewer than two optimizer launches captured; all {len(rows)} launches summed, "
              "not one step")
    else:
        print(f"one training step: the {len(step)} launches after the first optimizer step through the second")
        rows = step
    total_ns, launches = defaultdict(float), defaultdict(int)
    for row in rows:
        value = float(row["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}[row["Metric Unit"]]
        name = kernel_name(row)
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
