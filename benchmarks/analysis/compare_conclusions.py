"""Do two runs of one suite support the same conclusions? The reports' tests side by side.

A report's ``tests.csv`` holds every pairwise test of a results folder (exact permutation tests
with Holm over the primary family) and ``failure_tests.csv`` the Fisher tests of how many seeds
failed. This script joins two folders' tables on what was compared (dataset, value, model pair)
and sorts each comparison into: holds in both (same direction), holds in the earlier run only,
holds in the later run only, holds in both with opposite directions, or holds in neither. Tests
present in one folder only are listed as such.

    python benchmarks/analysis/compare_conclusions.py docs/comparative-analysis docs/toy2d-run2

Writes LATER/conclusions_against_<earlier folder name>.csv and prints the comparisons that hold
in at least one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = {"tests.csv": ["dataset", "metric", "family", "model_a", "model_b"],
        "failure_tests.csv": ["dataset", "outcome", "model_a", "model_b"]}


def _verdict(row: pd.Series) -> str:
    if row["_merge"] != "both":
        return "earlier run only" if row["_merge"] == "left_only" else "later run only"
    a, b = bool(row["holds_earlier"]), bool(row["holds_later"])
    if a and b:
        same = np.sign(row["difference_earlier"]) == np.sign(row["difference_later"])
        return "holds in both" if same else "holds in both, opposite directions"
    if a or b:
        return "holds in the earlier run only" if a else "holds in the later run only"
    return "holds in neither"


def compare(earlier: Path, later: Path, table: str) -> pd.DataFrame:
    """One row per comparison of ``table`` in either folder, with both runs' values and a
    verdict."""
    keys = KEYS[table]
    a, b = pd.read_csv(earlier / table), pd.read_csv(later / table)
    for frame in (a, b):
        if "difference" not in frame:  # failure tests: the difference of failure rates
            frame["difference"] = frame["k_a"] / frame["n_a"] - frame["k_b"] / frame["n_b"]
    cols = [c for c in ("mean_a", "mean_b", "k_a", "n_a", "k_b", "n_b", "difference", "p_holm",
                        "holds") if c in a.columns]
    out = a[keys + cols].merge(b[keys + cols], on=keys, how="outer",
                               suffixes=("_earlier", "_later"), indicator=True)
    out["verdict"] = out.apply(_verdict, axis=1)
    return out.drop(columns="_merge")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("earlier", type=Path)
    parser.add_argument("later", type=Path)
    args = parser.parse_args(argv)
    for folder in (args.earlier, args.later):
        if not (folder / "tests.csv").is_file():
            parser.error(f"{folder} has no tests.csv: run `densitylab report {folder}` first")
    parts = []
    for table in KEYS:
        if (args.earlier / table).is_file() and (args.later / table).is_file():
            frame = compare(args.earlier, args.later, table)
            frame.insert(0, "table", table)
            frame.insert(2, "compared", frame[KEYS[table][1]])  # the value or the outcome
            parts.append(frame)
    result = pd.concat(parts, ignore_index=True)
    path = args.later / f"conclusions_against_{args.earlier.resolve().name}.csv"
    result.to_csv(path, index=False)
    shown = result.loc[result["verdict"] != "holds in neither",
                       ["dataset", "compared", "model_a", "model_b", "difference_earlier",
                        "p_holm_earlier", "difference_later", "p_holm_later", "verdict"]]
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_columns", 30):
        print(shown.to_string(index=False))
    print(result["verdict"].value_counts().to_string())
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
