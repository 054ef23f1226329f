"""The Markdown report: per-dataset tables (mean +- standard error over seeds), the published
PacGAN / VEEGAN numbers beside ours where the protocol matches, the stacked-digit mode counts
beside the published stacked-MNIST ones (for context), the figures, and what failed."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from ..results.records import RunRecord
from ..results.store import RunStore
from ..suite.references import is_reference
from .code import code_line, code_section
from .explain import column_explanations
from .inference import cell_summary
from .likelihood_order import likelihood_order_section
from .naming import ordered_metrics as _ordered
from .naming import slug as _slug
from .published import (
    CITATIONS,
    PUBLISHED_TRAINING_SAMPLES,
    STACKED_CITATIONS,
    STACKED_MNIST,
    STACKED_PROTOCOL_SAMPLES,
    PublishedCell,
    budget_mismatch,
    format_check,
    protocol_of,
    published_for,
    training_samples,
)
from .sections import CELLS_NOTE, cells_table, model_label, tests_section
from .seeds import seed_caption
from .table import summarize
from .thresholds import threshold_lines, threshold_table

__all__ = ["render_report"]

#: Order of metric columns in the tables; others follow in the order they appear.

def _fmt(mean: float, se: float, n: int, seeds: int | None = None) -> str:
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.3g}"
    if n > 1 and math.isfinite(se):
        text += f" ± {se:.2g}"
    if seeds is not None and n < seeds:  # the value is undefined or failed for other seeds
        text += f" ({n} of {seeds} seeds)"
    return text


def _references(table: pd.DataFrame) -> set[str]:
    """Names of the reference rows (oracle, noise) in ``table``."""
    if "reference" not in table.columns:
        return set()
    return set(table.loc[table["reference"].fillna(False).astype(bool), "model"])


def _published_table(summary: pd.DataFrame, protocol: str, refs: set[str]) -> str:
    def ours(model: str, metric: str, scale: float = 1.0) -> str:
        row = summary[(summary["model"] == model) & (summary["metric"] == metric)]
        if row.empty:
            return ""
        r = row.iloc[0]
        return _fmt(r["mean"] * scale, r["se"] * scale, int(r["n"]))

    def pub(value: float, se: float) -> str:
        if not math.isfinite(value):
            return ""
        return f"{value:g}" + (f" ± {se:g}" if math.isfinite(se) else "")

    lines = ["| model | source | modes | high-quality % | KL of mode histogram |",
             "|---|---|---|---|---|"]
    for model in dict.fromkeys(summary["model"]):
        lines.append(f"| {model_label(model, model in refs)} | this run | "
                     f"{ours(model, 'modes_covered')} | "
                     f"{ours(model, 'high_quality_fraction', 100.0)} | "
                     f"{ours(model, 'kl_modes')} |")
    for r in published_for(protocol):
        lines.append(f"| {r.model} | {r.source} | {pub(r.modes, r.modes_se)} | "
                     f"{pub(r.high_quality_pct, r.high_quality_pct_se)} | "
                     f"{pub(r.kl_modes, r.kl_modes_se)} |")
    return "\n".join(lines)


def _stacked_table(summary: pd.DataFrame, records: list[RunRecord],
                   refs: set[str]) -> list[str]:
    """Our stacked-digit mode counts beside the published stacked-MNIST ones, labelled apart."""
    sizes = sorted({int(r.eval_samples or 0) for r in records})
    thresholds = {(m.get("params") or {}).get("threshold") for r in records
                  for m in r.metric_configs if m.get("name") == "stacked_modes"}
    ours_note = f"{', '.join(f'{n:,}' for n in sizes)} samples per evaluation"
    if thresholds != {None}:
        ours_note += ", confidence threshold " + ", ".join(sorted(map(str, thresholds)))

    def ours(model: str, metric: str) -> str:
        row = summary[(summary["model"] == model) & (summary["metric"] == metric)]
        return "" if row.empty else _fmt(row.iloc[0]["mean"], row.iloc[0]["se"],
                                          int(row.iloc[0]["n"]))

    def pub(value: float, se: float) -> str:
        return f"{value:g}" + (f" ± {se:g}" if math.isfinite(se) else "")

    lines = [
        "### Mode counts on stacked digits, with published stacked-MNIST numbers for context", "",
        "Modes covered out of the 1,000 digit triples and KL of the mode histogram to uniform. "
        "The published rows are on stacked MNIST: three 28x28 MNIST digits, "
        f"{STACKED_PROTOCOL_SAMPLES:,} samples, the papers' own classifiers and DCGAN-style "
        "networks. Ours are stacked 8x8 scikit-learn digits scored by our own small classifier "
        "with our networks and training budget, so the two are **not directly comparable**: the "
        "published numbers show the range that mode collapse spans on this kind of task, not a "
        "target. Published numbers: " + "; ".join(f"{k}: {v}" for k, v in
                                                   STACKED_CITATIONS.items()) + ".", "",
        "| model | data | source | modes covered (of 1,000) | KL to uniform |",
        "|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(summary["model"]):
        lines.append(f"| {model_label(model, model in refs)} | stacked 8x8 digits "
                     f"({ours_note}) | this run | "
                     f"{ours(model, 'modes_covered')} | {ours(model, 'kl_modes')} |")
    for r in STACKED_MNIST:
        lines.append(f"| {r.model} | stacked MNIST 28x28 | {r.source} | "
                     f"{pub(r.modes, r.modes_se)} | {pub(r.kl_modes, r.kl_modes_se)} |")
    return lines + [""]


def _has_stacked_modes(records: list[RunRecord]) -> bool:
    return any(r.values("stacked_modes") for r in records)


def render_report(suite_info: dict[str, Any] | None, records: list[RunRecord],
                  table: pd.DataFrame, failed: pd.DataFrame, figures: list[Path],
                  out_dir: Path, stale: list[RunRecord] | None = None,
                  published: list[PublishedCell] | None = None) -> str:
    """The report as Markdown text (figure links relative to ``out_dir``).

    ``records``: the suite's run records (typed, or their JSON mappings).
    ``stale``: records in the folder from another configuration; listed, never averaged.
    ``published``: our runs against the published cells they follow
    (:func:`densitylab.report.published.check_records`), one check table per dataset.
    """
    records = [RunRecord.of(r) for r in records]  # the JSON mappings are accepted too
    stale = [RunRecord.of(r) for r in stale or []]
    ok = [r for r in records if r.status == "ok"]
    suites = sorted({str(r.suite) for r in ok}) or [str((suite_info or {}).get("name"))]
    lines = [f"# densitylab report: {', '.join(suites)}", ""]
    lines += _what_this_suite_is(suite_info, records)
    devices = Counter(str(r.device) for r in ok)
    versions = ok[0].versions if ok else {}
    total_s = sum(float(r.wall_s or 0) for r in ok)
    diverged = int((failed["status"] == "diverged").sum()) if "status" in failed else 0
    lines += [
        f"- runs: {len(ok)} finished, {diverged} diverged, {len(failed) - diverged} failed "
        "(diverged and failed runs are not in the means)"
        + (f" (suite file: `{suite_info['source']}`)" if suite_info and suite_info.get("source")
           else ""),
        "- devices: " + ", ".join(f"{d} ({n} runs)" for d, n in devices.items()),
        f"- compute: {total_s:.1f} s of run time in total",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        code_line(records),
        "",
        CELLS_NOTE + " Metric definitions: see the metrics reference (`docs/metrics.md`); how to "
        "read intervals, failures and tests: the user guide (`docs/user-guide.md`).",
        "",
    ]
    summary = summarize(table)
    cells = cell_summary(table)
    refs = _references(table)
    fig_names = {p.name: p for p in figures}
    for dataset in dict.fromkeys(r.dataset for r in ok):
        sub = summary[summary["dataset"] == dataset]
        lines += [f"## {dataset}", ""]
        if sub.empty:
            lines += ["No metric values for this dataset.", ""]
            continue
        sub_cells = cells[cells["dataset"] == dataset]
        lines += [cells_table(sub_cells, _ordered(sub_cells["metric"])), ""]
        runs = [r for r in ok if r.dataset == dataset]
        lines += _collapse_counts(runs)
        lines += threshold_lines(threshold_table(runs, RunStore(out_dir)), dataset)
        protocols = {protocol_of(r.config) for r in runs}
        mismatch = budget_mismatch([r.config for r in runs])
        if len(protocols) == 1 and (protocol := next(iter(protocols))) is not None and mismatch:
            lines += [
                f"Published numbers on this protocol ({protocol}: same target, 2,500 samples, "
                "3-std high quality) are not set beside these runs: " + mismatch + ". They are "
                "in the papers' Table 1 (" + "; ".join(CITATIONS.values()) + "); the "
                "project's comparative analysis (`docs/comparative-analysis.md`) sets them "
                "beside its own runs and says where its setup differs.", "",
            ]
        elif len(protocols) == 1 and (protocol := protocols.pop()) is not None:
            lines += [
                f"### Published results on the same protocol ({protocol})", "",
                "Same target, 2,500 samples, high quality = within 3 standard deviations of "
                "the nearest mode. Published numbers: "
                + "; ".join(f"{k}: {v}" for k, v in CITATIONS.items())
                + ". VEEGAN reports 5 trials without errors; PacGAN mean ± s.e. over 10 trials. "
                "The match is in the target and the evaluation; architectures and training "
                "budgets are the papers' own and may differ from this suite's. Here, as in the "
                "papers, cells are mean ± standard error over seeds.",
                "",
                _published_table(sub, protocol, refs), "",
            ]
        lines += _published_check_table([c for c in published or [] if c.dataset == dataset])
        if _has_stacked_modes(runs):
            lines += _stacked_table(sub, runs, refs)
        for stem, caption in (("samples", "Real images (left) and each model's samples, first "
                               "seed: blur against sharpness"),
                              ("metrics", "Metrics per model: each seed (dots), the mean "
                               "with its 95 % bootstrap interval, failures as k of n, reference "
                               "rows as bands (dashed: their mean)"),
                              ("modes", "Samples per mode (dashed: uniform)"),
                              ("thresholds", "High-quality share and modes covered against "
                               "the threshold, 1 to 5 standard deviations (dotted: the "
                               "published 3), from the saved samples"),
                              ("curves", "Metrics during training (eval_every): one line per "
                               "seed on the same fixed evaluation sample"),
                              ("training", "Training losses per seed")):
            name = f"{stem}_{_slug(dataset)}.png"
            if name in fig_names:
                lines += [f"![{caption}](figures/{name})", "", f"*{caption}.*", ""]
    with_modes = any(_has_modes(r) for r in ok)
    shown = seed_caption(ok)
    for name, title, caption in (
            ("samples.png", "Model samples", "Model samples (blue) over a target sample (grey)"
             + (" and the mode centres (red crosses)" if with_modes else "") + f", {shown}"),
            ("samples_flagged.png", "Diverged or collapsed seeds", "Diverged or collapsed "
             "seeds (at most half of the modes covered), every seed: samples (red) over a "
             "target sample (grey)"),
            ("density.png", "Model log-density", f"Model log-density, {shown}"),
            ("witness.png", "Where each model is wrong", "MMD witness of the target against "
             f"each model's samples, {shown}: red where the target has mass the model lacks, "
             "blue where the model puts too much; significant regions outlined (max-T "
             "permutation test at 5 %, solid: missing mass, dashed: excess mass)"),
            ("c2st_map.png", "Where the classifier tells model from target", "The C2ST "
             f"classifier's probability that a point comes from the model, {shown}: near 0 "
             "(red) where the model misses the target's mass, near 1 (blue) where it puts mass "
             "the target lacks, 0.5 where they agree; blank where there is no data")):
        if name in fig_names:
            lines += [f"## {title}", "", f"![{caption}](figures/{name})", "",
                      f"*{caption}.*", ""]
    lines += tests_section(table, primary=(suite_info or {}).get("primary"))
    lines += likelihood_order_section(ok)
    order = _ordered(m for m in table["metric"] if isinstance(m, str) and m)
    explained = column_explanations(ok, order)
    if explained:
        lines += ["## Reading the columns", ""] + explained + [""]
    notes = _metric_notes(ok)
    if notes:
        lines += ["## Metrics not computed or undefined", ""] + notes + [""]
    if len(failed):
        lines += ["## Failed and diverged runs", "",
                  "Counted as failures and left out of every mean. Failed runs are retried when "
                  "the suite is run again; a diverged run (non-finite training loss) would "
                  "diverge again from the same seed and is not.", "",
                  "| dataset | model | seed | run id | status | error |",
                  "|---|---|---|---|---|---|"]
        for r in failed.itertuples():
            err = str(r.error).replace("|", "\\|").replace("\n", " ")
            status = getattr(r, "status", "failed")
            lines.append(f"| {r.dataset} | {r.model} | {r.seed} | `{r.run_id}` | {status} | "
                         f"{err} |")
        lines.append("")
    lines += code_section(records)
    if stale:
        lines += ["## Stale records (another configuration)", "",
                  f"{len(stale)} record(s) in `runs/` are not runs of this suite (another suite "
                  "or an earlier version of its settings); they are in no table or figure. "
                  "`densitylab run --force` moves them to `stale/`.", "",
                  "| suite | dataset | model | seed | run id | status |",
                  "|---|---|---|---|---|---|"]
        for r in stale:
            lines.append(f"| {r.suite} | {r.dataset} | {r.model} | {r.seed} | `{r.run_id}` | "
                         f"{r.status} |")
        lines.append("")
    return "\n".join(lines)


def _published_check_table(cells: list[PublishedCell]) -> list[str]:
    """Ours against each PacGAN Table 1 cell, for models trained with the published setup."""
    if not cells:
        return []
    budgets = {c.model: c.budget for c in cells}
    names = {"modes_covered": "modes", "high_quality_fraction": "high-quality %",
             "kl_modes": "KL of mode histogram"}
    lines = [
        "### Check against PacGAN Table 1 (the published setup)", "",
        "These models use PacGAN's published architecture and optimiser (the `pacgan2d` preset), "
        "so each published cell (" + CITATIONS["PacGAN"] + "; mean ± s.e. over 10 trials) is "
        "set against ours (mean ± s.e. over our seeds). A cell is within when |ours − published| "
        "≤ 2 × sqrt(s.e.² + s.e.²). Training budget against the published one: "
        + "; ".join(f"{m}: {b}" for m, b in budgets.items()) + ".", "",
        "| model | published row | metric | ours (seeds) | published | difference | "
        "combined s.e. | within 2 s.e. |",
        "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        within = "n/a" if c.within is None else ("yes" if c.within else "no")
        lines.append(f"| {c.model} | {c.published_model} | {names.get(c.metric, c.metric)} | "
                     f"{c.ours:.3g} ± {c.ours_se:.2g} ({c.n}) | {c.published:g} ± "
                     f"{c.published_se:g} | {c.difference:+.3g} | {c.combined_se:.2g} | "
                     f"{within} |")
    return lines + ["", format_check(cells) + ".", ""]


def _has_modes(record: RunRecord) -> bool:
    return bool(record.values("mode_coverage"))


def _what_this_suite_is(info: dict[str, Any] | None, records: list[RunRecord]) -> list[str]:
    """The report's opening: what was run, at which budget, and what such a run can show."""
    info = info or {}
    records = [r for r in records if not is_reference(r.model_kind)]  # the oracle and noise
    # do not train
    lines = ["## What this suite is", ""]
    if info.get("description"):
        lines += [info["description"], ""]
    seeds = sorted({r.seed for r in records})
    budgets: dict[str, set[tuple[int, int]]] = {}
    for r in records:
        budgets.setdefault(str(r.model), set()).add((int(r.steps or 0), int(r.batch_size or 0)))
    eval_sizes = sorted({r.eval_samples for r in records} - {None})
    lines.append(f"- seeds: {len(seeds)} ({', '.join(map(str, seeds))}); evaluation samples per "
                 f"run: {', '.join(f'{n:,}' for n in eval_sizes)}")
    for model, sizes in budgets.items():
        text = "; ".join(f"{st:,} steps of {bs:,} samples ({st * bs:,} samples seen)"
                         for st, bs in sorted(sizes))
        lines.append(f"- {model}: {text}")
    on_protocol = [r for r in records if protocol_of(r.config) is not None]  # published targets
    least = min((training_samples(r.config) for r in on_protocol),
                default=PUBLISHED_TRAINING_SAMPLES)
    lines.append("")
    if any(_has_modes(r) for r in records):
        can = ["which model covers the modes and which puts its samples on them (blur against "
               "sharpness), and how often a seed collapses (counted per seed below each table)"]
    else:  # no mode metric: nothing is counted per mode or per seed below the tables
        can = ["how far each model's samples are from the target on the metrics below, seed by "
               "seed"]
    cannot = []
    if len(seeds) < 5:
        cannot.append(f"differences between models smaller than the seed-to-seed spread: with "
                      f"{len(seeds)} seed(s) the intervals are wide, and only large "
                      "differences can hold, or none at all (see \"What these seeds can "
                      "decide\")")
    if least < PUBLISHED_TRAINING_SAMPLES:
        cannot.append(f"the published numbers: the shortest training here saw {least:,} "
                      f"samples, {100 * least / PUBLISHED_TRAINING_SAMPLES:.2g}% of the "
                      f"{PUBLISHED_TRAINING_SAMPLES:,} behind them")
    lines.append("It can show " + "; ".join(can) + ".")
    if cannot:
        lines.append("It cannot show " + "; nor ".join(cannot) + ".")
    return lines + [""]


def _collapse_counts(records: list[RunRecord]) -> list[str]:
    """Per model: in how many seeds every mode was covered, and each seed's count and share of
    high-quality samples (so that a collapsed seed is counted, not hidden in a mean +- standard
    error, and a bimodal outcome, some seeds sharp and some failed, shows as such)."""
    per_model: dict[str, list[tuple[int, int, int, float | None]]] = {}
    for r in records:
        values = r.values("mode_coverage")
        if "num_modes" in values:
            hq = values.get("high_quality_fraction")
            per_model.setdefault(r.model, []).append(
                (int(r.seed), int(values["modes_covered"]), int(values["num_modes"]),
                 None if hq is None else float(hq)))
    if not per_model:
        return []
    lines = ["Modes covered and high-quality share per seed (a seed that misses modes is a "
             "collapse, counted here rather than averaged away):", ""]
    for model, seeds in per_model.items():
        seeds.sort()
        total = seeds[0][2]
        full = sum(m == total for _, m, _, _ in seeds)
        lines.append(f"- {model}: all {total} modes in {full} of {len(seeds)} seeds ("
                     + ", ".join(f"seed {s}: {m}" + _high_quality_text(hq)
                                 for s, m, _, hq in seeds) + ")")
    return lines + [""]


def _high_quality_text(fraction: float | None) -> str:
    return "" if fraction is None else f" at {100 * fraction:.1f} %"


def _metric_notes(records: list[RunRecord]) -> list[str]:
    notes: dict[str, set[str]] = {}
    for r in records:
        for metric, res in r.metrics.items():
            if res.skipped is not None:
                key = f"- `{metric}` skipped for {r.dataset} / {r.model}: {res.skipped}"
                notes.setdefault(key, set())
            elif res.error is not None:
                key = f"- `{metric}` failed for {r.dataset} / {r.model}: {res.error}"
                notes.setdefault(key, set()).add(str(r.seed))
            for detail, why in res.details.items():
                if detail.endswith("_note"):  # a value the metric could not define: no row
                    key = (f"- `{detail[:-len('_note')]}` ({metric}) {why} for {r.dataset} / "
                           f"{r.model}")
                    notes.setdefault(key, set()).add(str(r.seed))
    return [k + (f" (seeds {', '.join(sorted(v))})" if v else "") for k, v in notes.items()]
