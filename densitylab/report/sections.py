"""Markdown sections of the report that carry its statistics: the per-dataset table (mean,
median, bootstrap interval, seeds, failures as "k of n", reference rows first), the pairwise
tests (the primary family under Holm's correction, the rest exploratory), what the seed counts
can decide, and Fisher's tests on failure counts (their own family)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..stats import BOOTSTRAP_METHOD, MAX_EXACT, NUM_RESAMPLES, fisher_failures
from .inference import ALPHA, failure_tests, pairwise_tests
from .power import report_power_lines, shift_design

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


def _interval(low: float, high: float) -> str:
    return "n/a" if not math.isfinite(low) else f"[{_num(low)}, {_num(high)}]"


def _method(r) -> str:
    return "exact" if r.exact else f"Monte Carlo, {int(r.relabellings):,}"


def _fisher_example(fails: pd.DataFrame) -> str:
    """What Fisher's test can tell apart at this suite's seed count, as a sentence."""
    n = int(max(fails["n_a"].max(), fails["n_b"].max()))
    k = max(1, round(0.3 * n))
    p = fisher_failures(0, n, k, n)
    return (f"With {n} seeds per model even 0 of {n} against {k} of {n} gives p = {p:.2g}: "
            "small differences in failure counts are not evidence.")


def tests_section(table: pd.DataFrame, metrics: Sequence[str] | None = None,
                  alpha: float = ALPHA, *, primary: Sequence[str] | None = None) -> list[str]:
    """The report's "Which differences hold" section as Markdown lines: the primary family
    (Holm), the exploratory tests (unadjusted) of ``metrics`` (default: the table's headline
    values), what the seeds can decide, and the failure
    counts (Fisher, their own family). ``primary``: the suite's declared primary values
    (None: the default per dataset, :mod:`densitylab.report.primary`)."""
    pairs = pairwise_tests(table, metrics, alpha, primary=primary)
    fails = failure_tests(table, metrics, alpha)
    lines = ["## Which differences hold", ""]
    if pairs.empty:
        return lines + ["Fewer than two models share a headline metric: nothing to test.", ""]
    first = pairs[pairs["family"] == "primary"]
    count = int(first["p"].notna().sum())
    chosen = ("declared by the suite (`primary` in `[suite]`)" if primary is not None else
              "the default for the dataset's kind (see the user guide, \"Primary and "
              "exploratory metrics\")")
    per_dataset = "; ".join(
        f"{d}: " + ", ".join(f"`{m}`" for m in dict.fromkeys(first[first["dataset"] == d]
                                                               ["metric"]))
        for d in dict.fromkeys(first["dataset"])) or "none"
    lines += [
        f"Every pair of models on each tested value, per dataset: the difference of the means "
        "over seeds with its 95 % bootstrap interval (each model's seeds resampled on their "
        "own, 10,000 seeded resamples), Hedges' g, and the p-value of a two-sided permutation "
        "test across seeds (exact, over every relabelling, when there are at most "
        f"{MAX_EXACT:,}: 10 against 10 seeds is 184,756; else {NUM_RESAMPLES:,} seeded Monte "
        f"Carlo relabellings with the +1 correction, so p >= 1/{NUM_RESAMPLES + 1:,}; the "
        "tables say which). The **primary** values, " + chosen + f", are {per_dataset}: "
        f"Holm's correction runs over these {count} tests only, and a difference **holds** when "
        f"its adjusted p-value is at most {alpha:g}. Every other value is **exploratory**: its "
        "p-value is unadjusted, and a small one is a lead to follow, not a finding. A difference "
        "that does not hold is not shown to be absent (see \"What these seeds can decide\"). "
        "Reference rows are not tested.", "",
    ]
    held = pairs[pairs["holds"]]
    designs = [shift_design(int(n_a), int(n_b), max(count, 1))
               for n_a, n_b in set(zip(first["n_a"], first["n_b"], strict=True))]
    if not held.empty:
        lines += ["Differences that hold (primary family, Holm):", ""]
        for r in held.itertuples():
            higher = r.model_a if r.difference > 0 else r.model_b
            lines.append(f"- {r.dataset} / `{r.metric}`: {r.model_a} {_num(r.mean_a)} vs "
                         f"{r.model_b} {_num(r.mean_b)} (higher: {higher}; {r.model_a} − "
                         f"{r.model_b} = {_num(r.difference)}, 95 % interval "
                         f"{_interval(r.diff_low, r.diff_high)}; Hedges' g {r.hedges_g:.2g}; "
                         f"p = {_fmt_p(r.p)} ({_method(r)}), Holm {_fmt_p(r.p_holm)})")
        lines.append("")
    elif designs and not any(d.can_reject for d in designs):
        lines += [f"**No difference can hold with these seeds, whatever the models do**: the "
                  f"smallest p-value the seed counts allow, times the {count} tests of the "
                  f"primary family, is above {alpha:g} (see \"What these seeds can decide\"). "
                  "The tables below describe the seeds; they cannot decide between models.", ""]
    else:
        lines += [f"No primary difference holds at {alpha:g} after Holm's correction over "
                  f"{count} tests.", ""]
    lines += report_power_lines(pairs, fails)
    header = ["| dataset | metric | A | B | mean A | mean B | A − B | 95 % interval of A − B "
              "| Hedges' g | Cliff's delta | p (method) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for family, rows in (("primary", first), ("exploratory",
                                               pairs[pairs["family"] == "exploratory"])):
        if rows.empty:
            continue
        title = ("All primary tests (Holm's correction over them)" if family == "primary" else
                 "Exploratory tests (unadjusted p-values; not findings)")
        extra = " Holm p | holds |" if family == "primary" else ""
        lines += [f"<details><summary>{title}</summary>", "",
                  header[0] + extra, header[1] + ("---|---|" if extra else "")]
        for r in rows.itertuples():
            row = (f"| {r.dataset} | {r.metric} | {r.model_a} ({r.n_a}) | {r.model_b} "
                   f"({r.n_b}) | {_num(r.mean_a)} | {_num(r.mean_b)} | {_num(r.difference)} | "
                   f"{_interval(r.diff_low, r.diff_high)} | {_num(r.hedges_g)} | "
                   f"{_num(r.cliffs_delta)} | {_fmt_p(r.p)}"
                   + (f" ({_method(r)})" if math.isfinite(r.p) else "") + " |")
            if extra:
                row += f" {_fmt_p(r.p_holm)} | {'yes' if r.holds else 'no'} |"
            lines.append(row)
        lines += ["", "</details>", ""]
    lines += ["### Failure counts", ""]
    if fails.empty:
        return lines + ["No model has a failed or diverged run, an undefined headline value or "
                        "a seed missing a mode: nothing to compare.", ""]
    lines += [
        "Counts of seeds with a failure (a failed or diverged run, no value of a headline "
        "metric, or a seed that misses at least one mode) compared between models with "
        f"Fisher's exact test (two-sided). These tests are their own family: Holm's correction "
        f"over the {len(fails)} tests of this table, apart from the primary family (pairs where "
        "neither model fails are not tested). " + _fisher_example(fails), "",
        "| dataset | outcome | A | B | A: k of n | B: k of n | p | Holm p | holds |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in fails.itertuples():
        lines.append(f"| {r.dataset} | {r.outcome} | {r.model_a} | {r.model_b} | "
                     f"{r.k_a} of {r.n_a} | {r.k_b} of {r.n_b} | {_fmt_p(r.p)} | "
                     f"{_fmt_p(r.p_holm)} | {'yes' if r.holds else 'no'} |")
    return lines + [""]
