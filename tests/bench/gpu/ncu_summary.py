"""Sums an `ncu --csv --metrics gpu__time_duration.sum` log by kernel: where the GPU time of a forward goes.

    python3 ncu_summary.py NCU_CSV
"""

import collections
import csv
import sys

SCALE = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


def main() -> None:
    with open(sys.argv[1], newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    total, count = collections.Counter(), collections.Counter()
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0][:60]
        value = float(row["Metric Value"].replace(",", ""))
        total[name] += value * SCALE.get(row["Metric Unit"], 1.0)
        count[name] += 1
    overall = sum(total.values()) or 1.0
    print(f"{'kernel':<60} {'calls':>6} {'total us':>10} {'share':>6}")
    for name, micros in total.most_common(25):
        print(f"{name:<60} {count[name]:>6} {micros:>10.1f} {micros / overall:>6.1%}")
    print(f"{'all':<60} {sum(count.values()):>6} {overall:>10.1f}")


if __name__ == "__main__":
    main()
