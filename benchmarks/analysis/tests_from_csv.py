"""Recompute a results folder's tests across seeds from its results.csv alone.

Writes ``tests.csv`` (every pair of models on each value: difference of means, its 95 %
bootstrap interval, Hedges' g, Cliff's delta, the exact or Monte Carlo permutation p-value, and
Holm's correction over the primary family) and ``failure_tests.csv`` (Fisher's exact test on
failure counts, Holm over their own family) next to it, with the report's own functions
(:func:`densitylab.report.inference.pairwise_tests` and ``failure_tests``). For folders whose
run records are not kept (``densitylab report`` needs them), so a claim can still cite its test.

    python benchmarks/analysis/tests_from_csv.py docs/comparative-analysis
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densitylab.report import inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder holding results.csv")
    args = parser.parse_args()
    table = inference.load_table(args.folder / "results.csv")
    inference.pairwise_tests(table).to_csv(args.folder / "tests.csv", index=False)
    inference.failure_tests(table).to_csv(args.folder / "failure_tests.csv", index=False)
    print(f"wrote {args.folder / 'tests.csv'} and {args.folder / 'failure_tests.csv'}")


if __name__ == "__main__":
    main()
