"""The results folder: one JSON file per run, written atomically, read back tolerantly.

Layout of ``DIR``::

    DIR/suite.json                  the suite this folder belongs to (name, source, settings,
                                    the ids of its runs)
    DIR/runs/<run_id>.json          one record per run: status "ok", "diverged" or "failed"
    DIR/runs/<run_id>.samples.npz   what the figures draw: the model's samples, the run's
                                    reference (target) sample, the target's mode centres and
                                    stds, and a log-density grid (see
                                    :func:`densitylab.suite.score.saved_arrays`)
    DIR/runs/<run_id>.model.pt      the trained model (``save_models = true``), as
                                    ``model.save`` writes it; :meth:`RunStore.load_model` or
                                    ``densitylab load DIR RUN_ID`` gives it back
    DIR/tb/<dataset>/<model>/seed<seed>-<run_id>/
                                    TensorBoard event files of the run (``tensorboard = true``;
                                    :mod:`densitylab.results.tensorboard`)
    DIR/report.md, results.csv,     what ``densitylab report`` wrote from the records
    DIR/figures/
    DIR/stale/<time>/               records of another configuration, with the report written
                                    from them, moved aside by ``densitylab run --force`` (never
                                    deleted)

A folder belongs to one suite configuration: a run into it with another configuration is
refused (:func:`densitylab.suite.plan.claim_folder`), and the report reads only the records
whose ids the folder's ``suite.json`` lists (others are listed as stale, never averaged).

A record is a :class:`~densitylab.results.records.RunRecord` (typed; its JSON layout is the one
every earlier version wrote, so old folders load). Every file is written with
:func:`densitylab._runtime.atomic_write_bytes` (temp file in the same folder, fsync, rename),
the samples and the model before the record, so a ``kill -9`` at any moment leaves either no
record or a complete one. Readers skip the hidden temp files a killed writer leaves behind and
any file that does not parse (with a warning), so the report never breaks on them.

A record also says which code computed it (``code``: :mod:`densitylab.suite.provenance`); a
run into a folder whose finished runs were computed by other code is refused too
(:func:`densitylab.suite.plan.check_code`).
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import models
from .._runtime import atomic_write_bytes, atomic_write_json, logger
from .records import DONE_STATUSES, RunRecord

__all__ = ["RunStore", "RunRecord", "DONE_STATUSES", "REPORT_FILES", "load_model"]

#: What ``densitylab report`` writes at the top of a results folder (made from its records).
REPORT_FILES = ("report.md", "results.csv", "figures")

class RunStore:
    """Read and write the run records of one results folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def record_path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs_dir / f"{run_id}.json"

    def samples_path(self, run_id: str) -> Path:
        """Where the samples of ``run_id`` live."""
        return self.runs_dir / f"{run_id}.samples.npz"

    def model_path(self, run_id: str) -> Path:
        """Where the saved model of ``run_id`` lives (``save_models = true``)."""
        return self.runs_dir / f"{run_id}.model.pt"

    def tensorboard_dir(self, dataset: str, model: str, seed: int, run_id: str) -> Path:
        """Where the TensorBoard event files of a run live: ``tb/<dataset>/<model>/seed<seed>-
        <run_id>`` (readable run names in TensorBoard; a separator in a label becomes ``_``)."""
        def part(label: object) -> str:
            return str(label).replace(os.sep, "_").replace("/", "_") or "_"

        return self.root / "tb" / part(dataset) / part(model) / f"seed{seed}-{run_id}"

    def write_model(self, run_id: str, model) -> Path:
        """Atomically save ``model`` (with its ``save(path)``, which writes temp, fsync, rename)
        beside the record of ``run_id``."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return Path(model.save(self.model_path(run_id)))

    def load_model(self, run_id: str, device="cpu"):
        """The trained model saved with the run ``run_id`` (a unique prefix of it is enough),
        rebuilt on ``device`` by :func:`densitylab.models.load`.

        Raises:
            FileNotFoundError: no record of that run, or the run saved no model (the suite did
                not set ``save_models = true``, the run failed or diverged, or its model kind
                cannot be saved).
            ValueError: the prefix matches several runs.
        """
        rid = self.resolve_run_id(run_id)
        rec = self.load_record(rid)
        path = self.model_path(rid)
        if rec is None or not rec.model_file or not path.is_file():
            if rec is not None and not rec.config.get("save_models"):
                why = ("its suite did not set save_models = true; set it in [suite] and run "
                       "the suite into a new folder")
            elif rec is not None and not rec.is_ok:
                why = f"it did not finish (status {rec.outcome!r}): {rec.failure_reason}"
            elif rec is not None and not rec.model_file:
                why = f"its model kind {rec.model_kind!r} has no save(path)"
            else:
                why = f"{path.name} is missing"
            raise FileNotFoundError(f"run {rid} in {self.root} has no saved model: {why}")
        return models.load(path, device=device)

    def resolve_run_id(self, run_id: str) -> str:
        """The id of the record ``run_id`` names: itself, or the one id it is a prefix of.

        Raises:
            FileNotFoundError: no record matches. ValueError: several do.
        """
        if self.record_path(run_id).is_file():
            return run_id
        ids = [rid for rid in self.record_ids() if rid.startswith(run_id)] if run_id else []
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise ValueError(f"run id {run_id!r} is a prefix of {len(ids)} runs in "
                             f"{self.runs_dir} ({', '.join(ids[:5])}...); give more digits")
        raise FileNotFoundError(f"no run {run_id!r} in {self.runs_dir}; `densitylab run SUITE "
                                "--out DIR --dry-run` lists the run ids")

    def write_record(self, record: RunRecord | dict[str, Any]) -> Path:
        """Atomically write a run record (a :class:`RunRecord`, or its JSON mapping, which must
        carry ``run_id``)."""
        if isinstance(record, RunRecord):
            record = record.to_dict()
        return atomic_write_json(self.record_path(record["run_id"]), record)

    def save_run(self, record: RunRecord, arrays: dict[str, np.ndarray] | None = None,
                 model=None, *, wall_s: float, before_record=None) -> RunRecord:
        """Keep a finished run: its samples (``arrays``) and trained ``model`` first, then its
        record, last, so that a record names only complete files and a run without its record
        is computed again. ``model`` without ``save`` (the oracle and noise rows, a plugin
        model) is noted in the log and not kept. ``before_record(record)`` runs just before the
        record is written (its TensorBoard events); its failure is logged, not raised."""
        if arrays is not None:
            record.samples_file = self.write_samples(record.run_id, arrays).name
        if model is not None and callable(getattr(model, "save", None)):
            record.model_file = self.write_model(record.run_id, model).name
        elif model is not None:
            logger.info("%s/%s: model kind %r has no save(path); its weights are not kept",
                        record.dataset, record.model, record.model_kind)
        record.wall_s = wall_s
        record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if before_record is not None:
            try:
                before_record(record)
            except Exception as err:  # a view of the record; the run still counts
                logger.warning("%s: not written before the record: %s", record.run_id, err)
        self.write_record(record)
        return record

    def write_samples(self, run_id: str, arrays: dict[str, np.ndarray]) -> Path:
        """Atomically write named arrays as a compressed ``.npz`` beside the record."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(self.samples_path(run_id), buf.getvalue())

    def write_suite(self, info: dict[str, Any]) -> Path:
        """Atomically write ``suite.json`` describing the suite that fills this folder."""
        return atomic_write_json(self.root / "suite.json", info)

    def read_suite(self) -> dict[str, Any] | None:
        """The ``suite.json`` of this folder, or None."""
        return _read_json(self.root / "suite.json")

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The record of ``run_id``, or None when it is absent or unreadable."""
        return _read_json(self.record_path(run_id))

    def load_record(self, run_id: str) -> RunRecord | None:
        """The typed record of ``run_id``, or None when it is absent or not a run record."""
        data = self.load(run_id)
        return RunRecord.from_dict(data) if _is_record(data, run_id) else None

    def is_finished(self, run_id: str) -> bool:
        """True when ``run_id`` has a record with status ``"ok"`` or ``"diverged"`` (failed runs
        are retried; a diverged one would diverge again)."""
        rec = self.load_record(run_id)
        return rec is not None and rec.status in DONE_STATUSES

    def record_ids(self) -> list[str]:
        """The ids of every record file in ``runs/`` (readable or not)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.stem for p in self.runs_dir.glob("*.json") if not p.name.startswith("."))

    def move_aside(self, run_ids) -> Path:
        """Move the records (with their samples, models and event files) of ``run_ids``, the
        current ``suite.json`` and the report written from them (:data:`REPORT_FILES`) into
        ``stale/<UTC time>/``, so that no file at the top of the folder describes another
        configuration; nothing is deleted. Returns that folder."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = self.root / "stale" / stamp
        (dest / "runs").mkdir(parents=True, exist_ok=False)
        for rid in run_ids:
            for path in (self.record_path(rid), self.samples_path(rid), self.model_path(rid)):
                if path.exists():
                    os.replace(path, dest / "runs" / path.name)
            for path in (self.root / "tb").glob(f"*/*/seed*-{rid}"):
                target = dest / path.relative_to(self.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        for name in ("suite.json", *REPORT_FILES):
            if (self.root / name).exists():
                os.replace(self.root / name, dest / name)
        return dest

    def load_samples(self, run_id: str) -> dict[str, np.ndarray] | None:
        """The arrays saved with ``run_id``, or None when absent or unreadable."""
        path = self.samples_path(run_id)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as err:
            logger.warning("ignoring unreadable samples file %s: %s", path, err)
            return None

    def records(self) -> list[dict[str, Any]]:
        """Every readable run record: in the order of the last suite run here, then the rest."""
        if not self.runs_dir.is_dir():
            return []
        out = []
        for path in sorted(self.runs_dir.glob("*.json")):
            if path.name.startswith("."):  # a temp file left by a killed writer
                continue
            rec = _read_json(path)
            if not _is_record(rec, path.stem):
                if rec is not None:
                    logger.warning("ignoring %s: not a run record", path)
                continue
            out.append(rec)
        order = {rid: i for i, rid in enumerate((self.read_suite() or {}).get("run_ids", []))}
        out.sort(key=lambda r: (order.get(r["run_id"], len(order)), str(r.get("dataset")),
                                str(r.get("model")), r.get("seed", 0), r["run_id"]))
        return out

    def records_by_id(self) -> dict[str, RunRecord]:
        """Every readable run record, typed, by run id (one read of the folder)."""
        return {r["run_id"]: RunRecord.from_dict(r) for r in self.records()}

    def current_records(self) -> list[RunRecord]:
        """The records of the suite this folder belongs to (see :meth:`current_and_stale`),
        typed."""
        return [RunRecord.from_dict(r) for r in self.current_and_stale()[0]]

    def stale_records(self) -> list[RunRecord]:
        """The records of another configuration (see :meth:`current_and_stale`), typed."""
        return [RunRecord.from_dict(r) for r in self.current_and_stale()[1]]

    def current_and_stale(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The records of the suite this folder belongs to (the run ids in ``suite.json``), and
        the others (stale: another configuration's). Without ``suite.json`` every record is
        current."""
        records = self.records()
        info = self.read_suite()
        if not info or "run_ids" not in info:
            return records, []
        ids = set(info["run_ids"])
        return ([r for r in records if r["run_id"] in ids],
                [r for r in records if r["run_id"] not in ids])


def load_model(out_dir: str | os.PathLike, run_id: str, device="cpu"):
    """The trained model that run ``run_id`` (or a unique prefix of it) of the results folder
    ``out_dir`` saved (``save_models = true``); see :meth:`RunStore.load_model`."""
    return RunStore(out_dir).load_model(run_id, device=device)


def _is_record(data: Any, run_id: str) -> bool:
    """True for the JSON mapping of the record of ``run_id`` (its ``run_id`` matches)."""
    return isinstance(data, dict) and data.get("run_id") == run_id


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable file %s: %s", path, err)
        return None
    return data if isinstance(data, dict) else None
