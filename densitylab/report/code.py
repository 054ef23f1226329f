"""Which code computed the runs of a report (:mod:`densitylab.suite.provenance`).

A report is of one code when every run of one dataset and model carries the same code
fingerprint and every run the same metric code; otherwise its rows are marked: the header says
so and a section lists each fingerprint with the runs that carry it. Runs written before
densitylab recorded its code are "code not recorded": a folder of such runs only is reported as
before, with that said; such runs beside recorded ones count as other code.
"""

from __future__ import annotations

from collections import defaultdict

from ..results.records import RunRecord
from ..suite.provenance import fingerprint_of

__all__ = ["code_line", "code_section", "is_mixed"]

UNKNOWN = "not recorded"


def _parts(rec: RunRecord) -> dict:
    parts = (rec.code or {}).get("parts")
    return parts if isinstance(parts, dict) else {}


def is_mixed(records: list[RunRecord]) -> bool:
    """True when the runs come from different code: two fingerprints among the runs of one
    dataset and model, two versions of the metric code, or recorded and unrecorded code."""
    by_model = defaultdict(set)
    for rec in records:
        by_model[rec.dataset, rec.model].add(fingerprint_of(rec))
    metric_code = {_parts(rec).get("metrics") for rec in records}
    return any(len(v) > 1 for v in by_model.values()) or len(metric_code) > 1


def code_line(records: list[RunRecord]) -> str:
    """The report header's line on the code of its runs."""
    records = [r for r in records if r.outcome != "failed"]
    if not records:
        return "- code: no finished run"
    if all(fingerprint_of(r) is None for r in records):
        return ("- code: not recorded (these runs were written before densitylab recorded "
                "the code of each run)")
    if is_mixed(records):
        return ("- code: **mixed**: these runs were computed by different code (see \"Runs from "
                "different code\" below)")
    commits = {(r.code.get("git_commit"), r.code.get("git_dirty")) for r in records}
    git = ""
    if len(commits) == 1 and (commit := next(iter(commits)))[0]:
        git = f", git `{commit[0][:10]}`" + (" with local changes" if commit[1] else "")
    n = len({fingerprint_of(r) for r in records})
    return (f"- code: every run of each model computed by the same code ({n} distinct code "
            f"fingerprint(s) in all; densitylab {records[0].code.get('densitylab', '?')}{git})")


def code_section(records: list[RunRecord]) -> list[str]:
    """A section listing each code fingerprint and the runs that carry it (empty unless the
    runs come from different code)."""
    records = [r for r in records if r.outcome != "failed"]
    if not records or not is_mixed(records):
        return []
    groups: dict[str | None, list[RunRecord]] = defaultdict(list)
    for rec in records:
        groups[fingerprint_of(rec)].append(rec)
    lines = ["## Runs from different code", "",
             "The runs of this report were not all computed by the same code (a folder resumed "
             "with `densitylab run --force` after the code changed, or runs written before "
             "densitylab recorded its code). Values of one model from different code may "
             "differ for that reason alone: run the suite into a new folder to compute every "
             "run with one code. Each fingerprint hashes the model, dataset and metric source "
             "a run executed (user guide, \"Provenance\").", "",
             "| code fingerprint | densitylab | git commit | runs |", "|---|---|---|---|"]
    for fp, recs in sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        code = recs[0].code or {}
        commit = code.get("git_commit")
        git = (f"`{commit[:10]}`" + (" (local changes)" if code.get("git_dirty") else "")
               if commit else "")
        runs: dict[tuple, list[str]] = defaultdict(list)
        for r in recs:
            runs[r.dataset, r.model].append(str(r.seed))
        text = "; ".join(f"{d}/{m}: seed {', '.join(seeds)}" for (d, m), seeds in runs.items())
        lines.append(f"| {f'`{fp}`' if fp else UNKNOWN} | {code.get('densitylab', '')} | {git} "
                     f"| {text} |")
    return lines + [""]
