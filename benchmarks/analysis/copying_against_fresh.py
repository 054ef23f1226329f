"""Does a model copy its training set, or is it only concentrated? C_T against the training set
beside C_T against a fresh set, paired by seed.

Meehan, Chaudhuri and Dasgupta's C_T (AISTATS 2020) is negative when generated points are closer
to a reference set than held-out points are. A model that is merely too concentrated near the
data (samples nearer the modes' centres than real points) is closer to *any* sample of the
target, so a negative C_T against the training set is evidence of copying only where it is more
negative than the same statistic against a fresh set of the same size that the model never saw
(the suite's ``data_copying_fresh_set``). This script pairs the two by seed for every model of a
results folder and tests the paired difference C_T(train) - C_T(fresh) with an exact sign-flip
permutation test (scipy.stats.permutation_test, every one of the 2^n sign patterns), beside a
percentile bootstrap interval of its mean (densitylab.stats.bootstrap_interval).

    python benchmarks/analysis/copying_against_fresh.py docs/memorisation

Writes DIR/copying_against_fresh.csv and prints it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from densitylab import stats

TRAIN, FRESH = "data_copying", "data_copying_fresh_set"


def paired_copying(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model): mean C_T against the training set and against the fresh
    set, the mean paired difference with its 95 % bootstrap interval, the exact sign-flip
    p-value, and how many seeds have a significantly negative C_T (p < 0.05) against each."""
    ok = table[(table["status"] == "ok") & table["metric"].isin(
        [TRAIN, FRESH, f"{TRAIN}_pvalue", f"{FRESH}_pvalue"])]
    wide = ok.pivot_table(index=["dataset", "model", "seed"], columns="metric", values="value")
    rows = []
    for (dataset, model), part in wide.groupby(level=["dataset", "model"], sort=False):
        part = part.dropna(subset=[TRAIN, FRESH])
        diff = (part[TRAIN] - part[FRESH]).to_numpy()
        test = scipy_stats.permutation_test((diff,), np.mean, permutation_type="samples",
                                            n_resamples=np.inf, alternative="two-sided")
        interval = stats.bootstrap_interval(diff)
        rows.append({
            "dataset": dataset, "model": model, "seeds": len(diff),
            "ct_train": part[TRAIN].mean(), "ct_fresh": part[FRESH].mean(),
            "difference": diff.mean(), "difference_low": interval.low,
            "difference_high": interval.high, "signflip_p": test.pvalue,
            "seeds_negative_train": _significantly_negative(part, TRAIN),
            "seeds_negative_fresh": _significantly_negative(part, FRESH),
        })
    return pd.DataFrame(rows)


def _significantly_negative(part: pd.DataFrame, value: str) -> int:
    """Seeds whose C_T is negative with a Stouffer p-value below 0.05."""
    return int(((part[value] < 0) & (part[f"{value}_pvalue"] < 0.05)).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a results folder with results.csv")
    args = parser.parse_args(argv)
    out = paired_copying(pd.read_csv(args.folder / "results.csv"))
    out.to_csv(args.folder / "copying_against_fresh.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
