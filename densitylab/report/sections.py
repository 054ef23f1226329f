"""Markdown sections of the report that carry its statistics: the per-dataset table (mean,
median, bootstrap interval, seeds, failures as "k of n", reference rows first), the pairwise
tests with Holm's correction, and Fisher's tests on failure counts."""

from __future__ import annotations

import math

import pandas as pd

from ..stats import BOOTSTRAP_METHOD, MAX_EXACT
from .inference import ALPHA, HEADLINE_METRICS, failure_tests, pairwise_tests

__all__ = ["CELLS_NOTE", "model_label", "cells_table", "tests_section"]

CELLS_NOTE = (
    "Each row is one model on one metric over the suite's seeds: the mean and median of the "
    f"seeds with a value, a 95 % bootstrap interval for the mean ({BOOTSTRAP_METHOD}, seed 0), "
    "the number of values and the failures as \"k of n\" seeds (a failed or diverged run, or a "
    "value the metric could not define for that seed), never silently dropped. The reference "
    "rows come first: `oracle` scores fresh samples of the target itself (held-out real "
    "images for image sets) and `noise` uniform points over the target's box padded by 10 % "
    "(pixel-shuffled real images for image sets), both with the same samples per evaluation "
    "and seeds as the models. A model near `noise` has learned little; `oracle` is the best "
    "score this protocol can give, sampling noise included."
)


def model_label(model: str, reference: bool) -> str:
    """The model's name, marked when it is a reference row."""
    return f"{model} (reference)" if reference else str(model)


def _num(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def cells_table(cells: pd.DataFrame, metrics: list[str]) -> str:
    """One dataset's cells (:func:`~densitylab.report.inference.cell_summary` rows) as a
    Markdown table, metric by metric in the order of ``metrics``, references first."""
    lines = ["| metric | model | mean | median | 95 % interval | values | failures |",
             "|---|---|---|---|---|---|---|"]
    for metric in metrics:
        for r in cells[cells["metric"] == metric].itertuples():
            interval = (f"[{_num(r.low)}, {_num(r.high)}]" if math.isfinite(r.low) else
                        "n/a" if r.n < 2 else f"[{_num(r.mean)}, {_num(r.mean)}]")
            failures = f"{r.failures} of {r.seeds}" if r.failures else "0"
            name = model_label(r.model, bool(r.reference))
            lines.append(f"| {metric} | {'**' + name + '**' if r.reference else name} | "
                         f"{_num(r.mean)} | {_num(r.median)} | {interval} | {r.n} | "
                         f"{failures} |")
    return "\n".join(lines)


def _fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def tests_section(table: pd.DataFrame, metrics=HEADLINE_METRICS, alpha: float = ALPHA) -> list[str]:
    """The report's "Which differences hold" section as Markdown lines."""
    pairs = pairwise_tests(table, metrics, alpha)
    lines = ["## Which differences hold", ""]
    if pairs.empty:
        return lines + ["Fewer than two models share a headline metric: nothing to test.", ""]
    tested = ", ".join(f"`{m}`" for m in metrics if m in set(pairs["metric"]))
    count = int(pairs["p"].notna().sum())
    lines += [
        f"Every pair of models on each headline metric ({tested}), "
        "per dataset: the difference of the means over seeds, Hedges' g, and the p-value of a "
        "two-sided permutation test across seeds (exact when the groups have at most "
        f"{MAX_EXACT:,} relabellings, else 10,000 seeded Monte Carlo relabellings with the +1 "
        f"correction, so p >= 1/10,001). Holm's correction runs over all {count} "
        f"tests of this section together; a difference **holds** when its adjusted p-value is at "
        f"most {alpha:g}. A difference that does not hold is not shown to be absent: with 10 "
        "seeds only large effects are detectable. Reference rows are not tested.", "",
    ]
    held = pairs[pairs["holds"]]
    if held.empty:
        lines += [f"No difference holds at {alpha:g} after Holm's correction.", ""]
    else:
        lines += ["Differences that hold:", ""]
        for r in held.itertuples():
            higher = r.model_a if r.difference > 0 else r.model_b
            lines.append(f"- {r.dataset} / `{r.metric}`: {r.model_a} {_num(r.mean_a)} vs "
                         f"{r.model_b} {_num(r.mean_b)} (higher: {higher}; Hedges' g "
                         f"{r.hedges_g:.2g}, p = {_fmt_p(r.p)}, Holm {_fmt_p(r.p_holm)})")
        lines.append("")
    lines += ["<details><summary>All pairwise tests</summary>", "",
              "| dataset | metric | A | B | mean A | mean B | A - B | Hedges' g | Cliff's delta "
              "| p | Holm p | holds |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in pairs.itertuples():
        lines.append(f"| {r.dataset} | {r.metric} | {r.model_a} ({r.n_a}) | {r.model_b} "
                     f"({r.n_b}) | {_num(r.mean_a)} | {_num(r.mean_b)} | {_num(r.difference)} | "
                     f"{_num(r.hedges_g)} | {_num(r.cliffs_delta)} | {_fmt_p(r.p)} | "
                     f"{_fmt_p(r.p_holm)} | {'yes' if r.holds else 'no'} |")
    lines += ["", "</details>", ""]
    fails = failure_tests(table, metrics, alpha)
    lines += ["### Failure counts", ""]
    if fails.empty:
        return lines + ["No model has a failed or diverged run, an undefined headline value or "
                        "a seed missing a mode: nothing to compare.", ""]
    lines += [
        "Counts of seeds with a failure (a failed or diverged run, no value of a headline "
        "metric, or a seed that misses at least one mode) compared between models with "
        f"Fisher's exact test (two-sided); Holm's correction over the {len(fails)} tests of "
        "this table (pairs where neither model fails are not tested). With 10 seeds per model "
        "even 0 of 10 against 3 of 10 gives p = 0.21: small differences in failure counts are "
        "not evidence.", "",
        "| dataset | outcome | A | B | A: k of n | B: k of n | p | Holm p | holds |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in fails.itertuples():
        lines.append(f"| {r.dataset} | {r.outcome} | {r.model_a} | {r.model_b} | "
                     f"{r.k_a} of {r.n_a} | {r.k_b} of {r.n_b} | {_fmt_p(r.p)} | "
                     f"{_fmt_p(r.p_holm)} | {'yes' if r.holds else 'no'} |")
    return lines + [""]
