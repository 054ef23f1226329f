"""What a results table supports: per-cell summaries with intervals and failure counts, and
tests of the differences between models (permutation tests with Holm's correction, Fisher's
exact test on failure counts).

Everything here works on a tidy table (``results.csv`` or
:func:`~densitylab.report.table.results_table`): columns ``dataset, model, seed, metric,
value``, and where present ``status``, ``reason`` and ``reference``. A seed of a (dataset,
model) with no value for a metric (a failed or diverged run, an undefined value, or in an older
table simply a missing row) is a failure of that cell, counted as "k of n", never averaged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..results.store import RunStore
from ..suite.references import REFERENCE_KINDS
from .metric_info import headline_values
from .primary import primary_for
from .table import results_table

__all__ = ["headline_values", "ALPHA", "load_table", "cell_summary", "pairwise_tests",
           "primary_of", "failure_tests", "compare", "format_compare", "Group",
           "PAIRWISE_COLUMNS"]

#: Family-wise error rate of the report's tests.
ALPHA = 0.05
_SEED = 0  # seed of every bootstrap and Monte Carlo permutation in a report
#: Columns of :func:`pairwise_tests` before Holm's ``p_holm`` and ``holds``.
PAIRWISE_COLUMNS = ["dataset", "metric", "family", "model_a", "model_b", "n_a", "n_b",
                    "mean_a", "mean_b", "difference", "diff_low", "diff_high", "hedges_g",
                    "cliffs_delta", "p", "exact", "relabellings"]


def load_table(path: str | Path) -> pd.DataFrame:
    """The tidy table of a results folder (its run records when present, with failures), or
    of a ``results.csv`` file or a folder holding only one."""
    p = Path(path)
    if p.is_dir() and RunStore(p).records():
        return results_table(p, with_failures=True)
    csv = p / "results.csv" if p.is_dir() else p
    if not csv.is_file():
        raise FileNotFoundError(f"{path}: no run records and no results.csv; expected a folder "
                                "written by 'densitylab run' or a results.csv")
    return pd.read_csv(csv, keep_default_na=True)


def _is_reference(table: pd.DataFrame) -> pd.Series:
    if "reference" in table.columns:
        return table["reference"].fillna(False).astype(bool)
    kind = table["model_kind"] if "model_kind" in table.columns else table["model"]
    return kind.isin(REFERENCE_KINDS)


def _ok(table: pd.DataFrame) -> pd.Series:
    ok = table["value"].notna() & (table["metric"].fillna("") != "")
    if "status" in table.columns:
        ok &= table["status"].fillna("ok") == "ok"
    return ok


@dataclass(frozen=True)
class Group:
    """One cell: the values of ``metric`` for ``model`` on ``dataset`` over its seeds."""

    dataset: str
    model: str
    metric: str
    values: np.ndarray  # one per seed with a value, in seed order
    seeds: int  # seeds of this (dataset, model): values plus failures
    reasons: tuple[str, ...]  # why each failed seed has no value

    @property
    def failures(self) -> int:
        """Seeds without a value: failed or diverged runs, undefined values."""
        return self.seeds - len(self.values)


def _group(table: pd.DataFrame, dataset, model, metric) -> Group:
    sub = table[(table["dataset"] == dataset) & (table["model"] == model)]
    seeds = sorted(set(sub["seed"]))
    cell = sub[(sub["metric"] == metric) & _ok(sub)].sort_values("seed")
    with_value = set(cell["seed"])
    reasons = []
    for seed in seeds:
        if seed in with_value:
            continue
        rows = sub[(sub["seed"] == seed) & ((sub["metric"] == metric)
                                           | (sub["metric"].fillna("") == ""))]
        why = ""
        if "reason" in rows.columns:
            why = "; ".join(str(r) for r in rows["reason"].dropna() if str(r))
        if not why and "status" in rows.columns and len(rows):
            why = str(rows["status"].iloc[0])
        reasons.append(f"seed {seed}: {why or 'no value recorded'}")
    return Group(str(dataset), str(model), str(metric), cell["value"].to_numpy(float),
                 len(seeds), tuple(reasons))


def _cells(table: pd.DataFrame):
    """(dataset, model, metric) of every cell, in table order, references first."""
    named = table[table["metric"].fillna("") != ""]
    ref = _is_reference(named)
    order = pd.concat([named[ref], named[~ref]])
    return list(dict.fromkeys(zip(order["dataset"], order["model"], order["metric"],
                                  strict=True)))


def cell_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, metric): ``mean``, ``median``, bootstrap interval ``low``,
    ``high`` (:func:`densitylab.stats.bootstrap_interval`, 95 %, seed 0), ``n`` (values),
    ``seeds``, ``failures`` (seeds without a value), ``reasons`` and ``reference``.

    Reference rows (oracle, noise) come first within each dataset.
    """
    cols = ["dataset", "model", "metric", "reference", "mean", "median", "low", "high", "n",
            "seeds", "failures", "reasons"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    refs = set(zip(table["dataset"][_is_reference(table)], table["model"][_is_reference(table)],
                   strict=True))
    rows = []
    for dataset, model, metric in _cells(table):
        g = _group(table, dataset, model, metric)
        x = g.values
        iv = stats.bootstrap_interval(x, seed=_SEED) if len(x) else None
        rows.append({"dataset": dataset, "model": model, "metric": metric,
                     "reference": (dataset, model) in refs,
                     "mean": float(x.mean()) if len(x) else math.nan,
                     "median": float(np.median(x)) if len(x) else math.nan,
                     "low": iv.low if iv else math.nan, "high": iv.high if iv else math.nan,
                     "n": len(x), "seeds": g.seeds, "failures": g.failures,
                     "reasons": "; ".join(g.reasons)})
    out = pd.DataFrame(rows, columns=cols)
    # references first within each dataset, datasets in table order
    datasets = list(dict.fromkeys(out["dataset"]))
    out["_d"] = out["dataset"].map(datasets.index)
    return (out.sort_values(["_d", "reference"], ascending=[True, False], kind="stable")
            .drop(columns="_d").reset_index(drop=True))


def _models(table: pd.DataFrame, dataset) -> list[str]:
    sub = table[(table["dataset"] == dataset) & ~_is_reference(table)]
    return list(dict.fromkeys(sub["model"]))


def pairwise_tests(table: pd.DataFrame, metrics: Sequence[str] | None = None,
                   alpha: float = ALPHA, *, primary: Sequence[str] | None = None) -> pd.DataFrame:
    """Every pair of (non-reference) models on each of ``metrics`` (default: the table's
    headline values, :func:`~densitylab.report.metric_info.headline_values`, as the metrics
    declare them) and each primary value in each dataset: the difference of means over the
    seeds with a value, its bootstrap interval
    (``diff_low``, ``diff_high``: :func:`densitylab.stats.bootstrap_difference`, 95 %, seed 0),
    Hedges' g, Cliff's delta and the two-sided permutation p-value
    (:func:`densitylab.stats.permutation_test`, seed 0; ``exact`` and ``relabellings`` say how
    it was computed).

    ``family`` is ``"primary"`` for the dataset's primary values (``primary`` as a suite
    declares them, else :func:`densitylab.report.primary.default_primary` of the dataset's
    values) and ``"exploratory"`` for the rest. Holm's correction (``p_holm``) runs over the
    primary rows only, and ``holds`` when it is at most ``alpha``; an exploratory row keeps its
    unadjusted p and never holds. A pair where a model has fewer than 2 values is not tested
    (``p`` NaN)."""
    metrics = headline_values(table) if metrics is None else metrics
    rows, groups = [], []
    for dataset in dict.fromkeys(table["dataset"]):
        models = _models(table, dataset)
        present = set(table[(table["dataset"] == dataset) & _ok(table)]["metric"])
        first = primary_of(table, dataset, primary)
        tested = list(first) + [m for m in metrics if m in present and m not in first]
        sub = table[table["dataset"] == dataset]
        for metric in tested:
            cells = {m: _group(sub, dataset, m, metric) for m in models}
            for a, b in itertools.combinations(models, 2):
                ga, gb = cells[a], cells[b]
                if not (len(ga.values) and len(gb.values)):
                    continue  # not applicable to a model (no density), or it never had a value
                row = {"dataset": dataset, "metric": metric,
                       "family": "primary" if metric in first else "exploratory",
                       "model_a": a, "model_b": b,
                       "n_a": len(ga.values), "n_b": len(gb.values),
                       "mean_a": _mean(ga.values), "mean_b": _mean(gb.values),
                       "difference": math.nan, "diff_low": math.nan, "diff_high": math.nan,
                       "hedges_g": math.nan, "cliffs_delta": math.nan, "p": math.nan,
                       "exact": False, "relabellings": 0}
                if min(len(ga.values), len(gb.values)) >= 2:
                    iv = stats.bootstrap_difference(ga.values, gb.values, seed=_SEED)
                    row.update(diff_low=iv.low, diff_high=iv.high,
                               hedges_g=stats.hedges_g(ga.values, gb.values),
                               cliffs_delta=stats.cliffs_delta(ga.values, gb.values))
                    groups.append((len(rows), ga.values, gb.values))
                rows.append(row)
    _permutation_tests(rows, groups)
    out = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
    primary_rows = out["family"] == "primary"
    adjusted = _with_holm(out[primary_rows], alpha)
    out["p_holm"] = math.nan
    out["holds"] = False
    out.loc[primary_rows, "p_holm"] = adjusted["p_holm"]
    out.loc[primary_rows, "holds"] = adjusted["holds"]
    out["holds"] = out["holds"].astype(bool)
    return out


def _permutation_tests(rows: list[dict], groups: list[tuple[int, np.ndarray, np.ndarray]]
                       ) -> None:
    """Fill in each tested row's permutation test (:func:`densitylab.stats.permutation_test`,
    seed 0), the rows of one pair of group sizes in one call: they share the relabellings,
    and each row's p-value is the one its own test gives."""
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for item in groups:
        by_size.setdefault((len(item[1]), len(item[2])), []).append(item)
    for (n_a, n_b), items in by_size.items():
        diffs, ps, exact = stats.permutation_pvalues(
            np.stack([a for _, a, _ in items]), np.stack([b for _, _, b in items]), seed=_SEED)
        count = math.comb(n_a + n_b, n_a) if exact else stats.NUM_RESAMPLES
        for (i, _, _), diff, p in zip(items, diffs, ps, strict=True):
            rows[i].update(difference=float(diff), p=float(p), exact=exact, relabellings=count)


def primary_of(table: pd.DataFrame, dataset, declared: Sequence[str] | None = None
               ) -> tuple[str, ...]:
    """The primary values of ``dataset`` in ``table`` (:func:`densitylab.report.primary.
    primary_for`: the ``declared`` ones it has, else the default for its kind)."""
    present = table[(table["dataset"] == dataset) & _ok(table)]["metric"]
    return primary_for(dict.fromkeys(present), declared)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _with_holm(out: pd.DataFrame, alpha: float) -> pd.DataFrame:
    out = out.copy()
    tested = out["p"].notna()
    out["p_holm"] = math.nan
    if tested.any():
        out.loc[tested, "p_holm"] = stats.holm(out.loc[tested, "p"].to_numpy(float))
    out["holds"] = out["p_holm"] <= alpha
    return out


def _run_failures(table: pd.DataFrame, dataset, model) -> tuple[int, int]:
    """(failed or diverged runs, seeds) of a model on a dataset."""
    sub = table[(table["dataset"] == dataset) & (table["model"] == model)]
    failed = sub[sub["metric"].fillna("") == ""]
    if "status" in failed.columns:
        failed = failed[failed["status"].isin(["failed", "diverged"])]
    return int(failed["seed"].nunique()), int(sub["seed"].nunique())


def _collapsed(table: pd.DataFrame, dataset, model) -> tuple[int, int] | None:
    """(seeds missing at least one mode, seeds with a mode count), or None without counts."""
    ok = table[(table["dataset"] == dataset) & (table["model"] == model) & _ok(table)]
    covered = ok[ok["metric"] == "modes_covered"].set_index("seed")["value"]
    total = ok[ok["metric"] == "num_modes"].set_index("seed")["value"]
    both = covered.index.intersection(total.index)
    if len(both) == 0:
        return None
    return int((covered[both] < total[both]).sum()), len(both)


def failure_tests(table: pd.DataFrame, metrics: Sequence[str] | None = None,
                  alpha: float = ALPHA) -> pd.DataFrame:
    """Fisher's exact test (:func:`densitylab.stats.fisher_failures`) between every pair of
    models of a dataset on: seeds with no value of each of ``metrics`` (default: the table's
    headline values; failed or diverged runs, undefined values), and seeds that miss at least
    one mode (``modes_covered < num_modes``). Only pairs with at least one failure enter the
    family; Holm's correction over it."""
    metrics = headline_values(table) if metrics is None else metrics
    rows = []
    for dataset in dict.fromkeys(table["dataset"]):
        models = _models(table, dataset)
        present = set(table[(table["dataset"] == dataset)]["metric"].dropna())
        outcomes = [("failed or diverged runs", {m: _run_failures(table, dataset, m)
                                                 for m in models})]
        for metric in (m for m in metrics if m in present):
            groups = {m: _group(table, dataset, m, metric) for m in models}
            # a model with no value at all: not applicable (a GAN's likelihood), or every run
            # failed (counted above)
            outcomes.append((f"no value of {metric}",
                             {m: (g.failures, g.seeds) for m, g in groups.items()
                              if len(g.values)}))
        collapsed = {m: _collapsed(table, dataset, m) for m in models}
        if all(v is not None for v in collapsed.values()):
            outcomes.append(("seeds missing a mode", collapsed))
        for outcome, counts in outcomes:
            for a, b in itertools.combinations(models, 2):
                if a not in counts or b not in counts:
                    continue
                (ka, na), (kb, nb) = counts[a], counts[b]
                if ka + kb == 0 or min(na, nb) == 0:
                    continue
                rows.append({"dataset": dataset, "outcome": outcome, "model_a": a,
                             "model_b": b, "k_a": ka, "n_a": na, "k_b": kb, "n_b": nb,
                             "p": stats.fisher_failures(ka, na, kb, nb)})
    out = pd.DataFrame(rows, columns=["dataset", "outcome", "model_a", "model_b", "k_a", "n_a",
                                      "k_b", "n_b", "p"])
    return _with_holm(out, alpha)


def compare(table: pd.DataFrame, metric: str, model_a: str, model_b: str,
            dataset: str | None = None) -> list[dict]:
    """Both groups, the difference of means, effect sizes, the permutation test and (when a
    group has failures) Fisher's test on the failure counts, for each dataset that has
    ``metric`` for both models (only ``dataset`` when given)."""
    for name, value in (("metric", metric), ("model_a", model_a), ("model_b", model_b)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    known = list(dict.fromkeys(table["metric"].dropna()))
    if metric not in known:
        raise ValueError(f"metric: {metric!r} is not in the results; expected one of "
                         f"{', '.join(m for m in known if m)}")
    models = list(dict.fromkeys(table["model"]))
    for name, model in (("model_a", model_a), ("model_b", model_b)):
        if model not in models:
            raise ValueError(f"{name}: no runs of model {model!r}; expected one of "
                             f"{', '.join(map(str, models))}")
    datasets = list(dict.fromkeys(table["dataset"]))
    if dataset is not None and dataset not in datasets:
        raise ValueError(f"dataset: {dataset!r} is not in the results; expected one of "
                         f"{', '.join(map(str, datasets))}")
    out = []
    for ds in [dataset] if dataset is not None else datasets:
        ga, gb = (_group(table, ds, m, metric) for m in (model_a, model_b))
        if ga.seeds == 0 or gb.seeds == 0 or (dataset is None and not (len(ga.values)
                                                                       and len(gb.values))):
            continue
        res = {"dataset": ds, "metric": metric, "a": ga, "b": gb}
        if len(ga.values) and len(gb.values):
            res["test"] = stats.permutation_test(ga.values, gb.values, seed=_SEED)
        if min(len(ga.values), len(gb.values)) >= 2:
            res["interval"] = stats.bootstrap_difference(ga.values, gb.values, seed=_SEED)
            res["hedges_g"] = stats.hedges_g(ga.values, gb.values)
            res["cliffs_delta"] = stats.cliffs_delta(ga.values, gb.values)
        if ga.failures or gb.failures:
            res["fisher_p"] = stats.fisher_failures(ga.failures, ga.seeds, gb.failures, gb.seeds)
        out.append(res)
    if not out:
        raise ValueError(f"no dataset has values of {metric!r} for both {model_a!r} and "
                         f"{model_b!r}")
    return out


def _describe(g: Group) -> list[str]:
    x = g.values
    lines = [f"  {g.model}: {len(x)} value(s) from {g.seeds} seed(s)"
             + (f", {g.failures} of {g.seeds} without a value" if g.failures else "")]
    if len(x):
        iv = stats.bootstrap_interval(x, seed=_SEED)
        lines.append(f"    mean {x.mean():.4g}, median {np.median(x):.4g}, 95 % interval "
                     f"[{iv.low:.4g}, {iv.high:.4g}]")
        lines.append("    values: " + ", ".join(f"{v:.4g}" for v in x))
    lines += [f"    {r}" for r in g.reasons]
    return lines


def format_compare(results: list[dict]) -> str:
    """The text ``densitylab compare`` prints for :func:`compare`'s results."""
    lines = []
    for r in results:
        a, b = r["a"], r["b"]
        lines.append(f"{r['dataset']} / {r['metric']}: {a.model} vs {b.model}")
        lines += _describe(a) + _describe(b)
        test = r.get("test")
        if test is None:
            lines.append("  no test: a group has no value")
        else:
            kind = (f"exact, all {test.relabellings:,} relabellings" if test.exact else
                    f"Monte Carlo, {test.relabellings:,} relabellings, +1 corrected")
            lines.append(f"  difference of means ({a.model} - {b.model}): {test.difference:.4g}"
                         + (f", 95 % bootstrap interval [{r['interval'].low:.4g}, "
                            f"{r['interval'].high:.4g}]" if "interval" in r else ""))
            if "hedges_g" in r:
                lines.append(f"  effect size: Hedges' g {r['hedges_g']:.3g}, Cliff's delta "
                             f"{r['cliffs_delta']:.3g}")
            lines.append(f"  two-sided permutation test p = {test.pvalue:.4g} ({kind})")
        if "fisher_p" in r:
            lines.append(f"  failures {a.failures} of {a.seeds} vs {b.failures} of {b.seeds}: "
                         f"Fisher's exact test p = {r['fisher_p']:.4g} (two-sided)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
