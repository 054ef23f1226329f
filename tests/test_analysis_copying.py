"""The paired copying analysis (benchmarks/analysis/copying_against_fresh.py) against values
worked out by hand: the paired difference of C_T against the training set and against a fresh
set, its sign-flip p-value, and the seeds counted as significantly negative."""

from __future__ import annotations

import pandas as pd
import pytest
from _scripts import benchmark_script


def _script():
    return benchmark_script("copying_against_fresh")


def _rows(model: str, train: list[float], fresh: list[float], p_train: list[float],
          p_fresh: list[float]) -> list[dict]:
    rows = []
    for seed, values in enumerate(zip(train, fresh, p_train, p_fresh, strict=True)):
        for metric, value in zip(("data_copying", "data_copying_fresh_set",
                                  "data_copying_pvalue", "data_copying_fresh_set_pvalue"),
                                 values, strict=True):
            rows.append({"dataset": "ring", "model": model, "seed": seed, "metric": metric,
                         "value": value, "status": "ok"})
    return rows


def test_paired_difference_and_exact_sign_flip_pvalue():
    copier = _rows("copier", [-3.0, -2.0, -4.0, -1.0, -2.5, -3.5], [0.0, 1.0, -1.0, 0.5, 0.0, 0.5],
                   [0.001] * 6, [0.5, 0.5, 0.01, 0.5, 0.5, 0.5])
    failed = [{"dataset": "ring", "model": "copier", "seed": 6, "metric": "", "value": float("nan"),
               "status": "failed"}]
    out = _script().paired_copying(pd.DataFrame(copier + failed)).set_index("model")
    row = out.loc["copier"]
    # differences -3, -3, -3, -1.5, -2.5, -4: all negative, so of the 2^6 sign patterns only
    # this one and its mirror are as extreme: p = 2 / 64
    assert row["seeds"] == 6
    assert row["difference"] == pytest.approx(-17.0 / 6)
    assert row["ct_train"] == pytest.approx(-16.0 / 6) and row["ct_fresh"] == pytest.approx(1.0 / 6)
    assert row["signflip_p"] == pytest.approx(2 / 64)
    assert row["difference_low"] < row["difference"] < row["difference_high"] < 0
    assert row["seeds_negative_train"] == 6 and row["seeds_negative_fresh"] == 1


def test_no_difference_gives_the_largest_pvalue():
    same = _rows("same", [1.0, -1.0, 2.0, -2.0], [1.0, -1.0, 2.0, -2.0], [0.5] * 4, [0.5] * 4)
    row = _script().paired_copying(pd.DataFrame(same)).iloc[0]
    assert row["difference"] == 0.0 and row["signflip_p"] == pytest.approx(1.0)
    assert row["seeds_negative_train"] == 0
