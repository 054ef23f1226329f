"""The suite's plan stage for one invocation: which runs to compute, and in which units
(:func:`plan_work`).

A results folder belongs to one suite configuration (:func:`claim_folder`) and to one code
(:func:`check_code`): a changed suite, or runs added beside finished runs of other code, are
refused unless ``force`` moves the stale records aside or keeps the other code's runs.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._runtime import logger
from ..results.records import DONE_STATUSES, RunRecord
from ..results.store import RunStore
from ..results.tensorboard import tensorboard_available
from . import registry
from .config import RunSpec, SuiteConfig
from .provenance import fingerprint_of, spec_code

__all__ = ["Work", "FolderInUseError", "plan_work", "claim_folder", "check_code",
           "select_runs", "pending_runs", "group_runs", "batch_key", "tensorboard_available"]


@dataclass
class Work:
    """What one invocation of a suite computes (see :func:`plan_work`)."""

    selected: list[RunSpec]
    #: the pending runs grouped into units, each run carrying its expected code
    units: list[list[RunSpec]] = field(default_factory=list)
    #: ids of the selected runs already finished (``ok`` or ``diverged``)
    skipped: list[str] = field(default_factory=list)
    #: when each pending run's record was written before (None without one): a record newer
    #: than that was written by this invocation
    written_before: dict[str, str | None] = field(default_factory=dict)
    #: where stale records were moved (``force``), else None
    moved_to: Path | None = None
    #: finished runs of other code kept with ``force``
    other_code: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[RunSpec]:
        """The pending runs, unit by unit."""
        return [spec for unit in self.units for spec in unit]


def plan_work(config: SuiteConfig, store: RunStore, *, only: str | None = None,
              force: bool = False) -> Work:
    """The runs of ``config`` selected by ``only`` that ``store`` does not hold finished, in
    units, longest first (seeds x steps); claims the folder and records it in ``suite.json``.

    Raises:
        ValueError: ``only`` matches no run.
        FolderInUseError: the folder belongs to another configuration, or holds runs of other
            code while runs are to be computed, and ``force`` is False.
    """
    info = config.suite_info()
    selected = select_runs(config.runs, only)
    if only and not selected:
        raise ValueError(f"only: pattern {only!r} matches no run; runs are named "
                         "'dataset/model/seed' (e.g. 'ring/vae/*') or by run id")
    moved = claim_folder(config, store, force=force)
    records = store.records_by_id()
    finished = {rid: rec for rid, rec in records.items() if rec.status in DONE_STATUSES}
    todo = [spec for spec in selected if spec.run_id not in finished]
    # the code each run is expected to be computed with, built only when there is work to do
    codes = {spec.run_id: spec_code(spec) for spec in config.runs} if todo else {}
    other_code = check_code(store.root, finished, codes, todo, force=force)
    if other_code:
        logger.warning("keeping %d run(s) computed by other code (--force); the report lists "
                       "which runs came from which code", len(other_code))
    todo = [replace(spec, code=codes[spec.run_id]) for spec in todo]
    skipped = [spec.run_id for spec in selected if spec.run_id in finished]
    if skipped:
        logger.info("%d of %d run(s) already done in %s", len(skipped), len(selected), store.root)
    units = group_runs(todo) if config.batch_seeds else [[spec] for spec in todo]
    units.sort(key=lambda u: -len(u) * u[0].config["train"]["steps"])  # none ends a worker late
    before = {spec.run_id: getattr(records.get(spec.run_id), "finished_at", None)
              for spec in todo}
    store.write_suite(info)
    return Work(selected, units, skipped, before, moved, other_code)


class FolderInUseError(ValueError):
    """The results folder belongs to another suite configuration (see :func:`claim_folder`)."""


def select_runs(runs: Iterable[RunSpec], only: str | None) -> list[RunSpec]:
    """The runs whose ``dataset/model/seed`` label or run id matches the fnmatch ``only``.

    A swept model's label holds brackets (``vae[latent_dim=8]``), which fnmatch reads as a
    character class: the pattern also matches with its brackets taken literally.
    """
    runs = list(runs)
    if not only:
        return runs
    literal = only.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return [r for r in runs if any(fnmatch.fnmatchcase(r.label, p) or
                                   fnmatch.fnmatchcase(r.run_id, p) for p in (only, literal))]


def pending_runs(runs: Iterable[RunSpec], out_dir: str | Path) -> list[RunSpec]:
    """The runs without a finished (``ok`` or ``diverged``) record in ``out_dir``."""
    store = RunStore(out_dir)
    return [r for r in runs if not store.is_finished(r.run_id)]


def claim_folder(config: SuiteConfig, out_dir: str | Path | RunStore, *, force: bool = False
                 ) -> Path | None:
    """Make sure ``out_dir`` holds nothing but ``config``'s runs before running into it.

    A folder whose ``suite.json`` names another suite or other run ids, or which holds records
    of other runs, is refused with :class:`FolderInUseError` naming the keys that differ. With
    ``force`` those stale records (and the old ``suite.json``) are moved, never deleted, to
    ``out_dir/stale/<time>/``; returns that folder (None when nothing was moved).
    """
    store = out_dir if isinstance(out_dir, RunStore) else RunStore(out_dir)
    info = config.suite_info()
    old = store.read_suite()
    ids = info["run_ids"]
    stale = [rid for rid in store.record_ids() if rid not in set(ids)]
    changed = old is not None and (old.get("name") != info["name"]
                                   or set(old.get("run_ids", [])) != set(ids))
    if not stale and not changed:
        return None
    if force:
        dest = store.move_aside(stale)
        logger.info("moved %d stale record(s) of another configuration to %s", len(stale), dest)
        return dest
    differences = _differences(old, info["settings"])
    raise FolderInUseError(
        f"{store.root} already holds results of another configuration"
        + (f" (suite {old.get('name')!r}" + (f" from {old['source']}" if old.get("source")
                                             else "") + ")" if old else "")
        + f"; {len(stale)} of its records are not runs of this suite. It differs in: "
        + differences + ". Results of different configurations are never mixed: run into a "
        "new folder (--out NEW_DIR), or pass --force to move the stale records to "
        f"{store.root / 'stale'} (nothing is deleted)."
    )


def check_code(root: Path, finished: dict[str, RunRecord], codes: dict[str, dict[str, Any]],
               todo: list[RunSpec], *, force: bool = False) -> list[str]:
    """Refuse to add the ``todo`` runs to a folder whose ``finished`` records (by run id) were
    computed by other code than ``codes`` (each run's :func:`~.provenance.spec_code`) or by
    unknown code (no fingerprint recorded). With ``force`` those records are kept; returns
    their ids.

    Raises:
        FolderInUseError: other code's records and runs to compute, without ``force``.
    """
    if not todo:
        return []
    other: dict[str, list[str]] = {}
    ids = []
    for rid, code in codes.items():
        rec = finished.get(rid)
        if rec is None:
            continue
        old = fingerprint_of(rec)
        if old != code.get("fingerprint"):
            what = (f"fingerprint {old} -> {code.get('fingerprint')}" if old else
                    "code not recorded (written before densitylab recorded it)")
            other.setdefault(what, []).append(f"{rec.dataset}/{rec.model}/{rec.seed}")
            ids.append(rid)
    if not other or force:
        return ids
    shown = "; ".join(f"{what}: {_first(labels, 4)}" for what, labels in other.items())
    raise FolderInUseError(
        f"{root} holds {len(ids)} finished run(s) computed by other code than this "
        f"densitylab computes them with ({shown}), and {len(todo)} run(s) to compute. Results "
        "of different code are never mixed silently: run into a new folder (--out NEW_DIR) to "
        "compute every run with this code, or pass --force to keep those runs and add the "
        "others (the report then lists which runs came from which code).")


def _differences(old: dict[str, Any] | None, settings: dict[str, Any], limit: int = 8) -> str:
    """The keys whose values differ between a folder's recorded settings and ``settings``
    (:meth:`SuiteConfig.settings`)."""
    if not old or "settings" not in old:
        return "(the folder does not record its suite's settings; its run ids differ)"
    before, after = _flatten(old["settings"]), _flatten(settings)
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    if not keys:
        return ("no key of the suite file: the code's defaults or densitylab's version changed "
                "the run ids")
    return _first([f"{k} ({_short(before.get(k))} -> {_short(after.get(k))})" for k in keys],
                  limit)


def _first(items: list[str], limit: int) -> str:
    """The first ``limit`` of ``items``, and how many more there are."""
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more"
                                       if len(items) > limit else "")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    return "unset" if value is None else repr(value)


def group_runs(runs: Iterable[RunSpec]) -> list[list[RunSpec]]:
    """Runs that differ only in their seed, grouped (first-seen order); others alone."""
    units: dict[str | int, list[RunSpec]] = {}
    for i, spec in enumerate(runs):  # a run without a batch key is alone under its index
        units.setdefault(batch_key(spec) or i, []).append(spec)
    return list(units.values())


def batch_key(spec: RunSpec) -> str | None:
    """Runs with equal keys differ only in their seed and can train as one batched model.

    None when the model kind has no batched implementation (see
    :mod:`densitylab.models.batched`) or the run fixes the model's own seed.
    """
    cfg, model = spec.config, spec.config["model"]
    if "seed" in model["params"] or registry.batched_model_class(model["kind"]) is None:
        return None
    rest = {k: v for k, v in cfg.items() if k != "seed"}
    return json.dumps([spec.suite, spec.dataset, spec.model, spec.device, rest], sort_keys=True)
