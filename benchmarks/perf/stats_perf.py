"""Cost of the report's tests across seeds: exact permutation p-values up to 200,000
relabellings, the two-sample bootstrap interval, and the power search of ``densitylab plan``
(JSON).

Usage:
    python benchmarks/perf/stats_perf.py [--out PATH] [--repeats 5]

Measured: ``stats.permutation_test`` on 10 against 10 seeds (184,756 relabellings, exact) the
first time (the index table of the relabellings is built) and after; ``permutation_pvalues`` on
180 rows of 10 against 10 at once (one report's pairwise tests); ``bootstrap_difference`` on 10
against 10; ``report.power.shift_design`` and ``failure_design`` for 10 seeds and a family of
60 (the toy2d suite). The best of ``--repeats`` wall times is kept, with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from densitylab import stats
from densitylab._runtime import atomic_write_json
from densitylab.report import power


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/perf/results/stats-vm.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 10), rng.normal(1, 1, 10)
    start = time.perf_counter()
    stats.permutation_test(a, b)
    first = time.perf_counter() - start
    rows_a, rows_b = rng.normal(0, 1, (180, 10)), rng.normal(0.5, 1, (180, 10))
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_1min": os.getloadavg()[0]},
        "permutation_10v10_first_s": first,
        "permutation_10v10_s": _best(lambda: stats.permutation_test(a, b), args.repeats),
        "permutation_180_rows_10v10_s": _best(
            lambda: stats.permutation_pvalues(rows_a, rows_b), args.repeats),
        "bootstrap_difference_10v10_s": _best(
            lambda: stats.bootstrap_difference(a, b), args.repeats),
        "shift_design_10_seeds_family_60_s": _best(
            lambda: power.shift_design.__wrapped__(10, 10, 60), args.repeats),
        "failure_design_10_seeds_family_40_s": _best(
            lambda: power.failure_design.__wrapped__(10, 10, 40), args.repeats),
    }
    result["machine"]["load_1min_after"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), result)
    print(result)


if __name__ == "__main__":
    main()
