"""The results folder: one JSON file per run, written atomically, read back tolerantly.

Layout of ``DIR``::

    DIR/suite.json                  the suite this folder belongs to (name, source, settings,
                                    the ids of its runs)
    DIR/runs/<run_id>.json          one record per run: status "ok", "diverged" or "failed"
    DIR/runs/<run_id>.samples.npz   model samples (and a log-density grid) for the figures
    DIR/stale/<time>/               records of another configuration, moved aside by
                                    ``densitylab run --force`` (never deleted)

A folder belongs to one suite configuration: a run into it with another configuration is
refused (:func:`densitylab.suite.runners.claim_folder`), and the report reads only the records
whose ids the folder's ``suite.json`` lists (others are listed as stale, never averaged).

Every file is written with :func:`densitylab._runtime.atomic_write_bytes` (temp file in the same
folder, fsync, rename), the samples before the record, so a ``kill -9`` at any moment leaves
either no record or a complete one. Readers skip the hidden temp files a killed writer leaves
behind and any file that does not parse (with a warning), so the report never breaks on them.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._runtime import atomic_write_bytes, atomic_write_json, logger

__all__ = ["RunStore", "RunRecord", "DONE_STATUSES"]

#: Statuses of a finished run: not run again when the suite is (a diverged run diverges again
#: from the same seed). A "failed" run is retried.
DONE_STATUSES = ("ok", "diverged")


@dataclass
class RunRecord:
    """One run's record (``runs/<run_id>.json``) as typed fields, for readers such as the report.

    :meth:`from_dict` reads the JSON layout the suite writes (every key optional but
    ``run_id``); keys without a field here (``versions``, ``history``, ``curves``, ...) and keys
    written as null are kept in ``extra``, so :meth:`to_dict` gives back the same mapping.
    """

    run_id: str
    suite: str | None = None
    dataset: str | None = None  # the dataset's label in the suite
    model: str | None = None  # the model's label in the suite
    seed: int | None = None
    status: str | None = None  # as written: "ok", "diverged" or "failed"
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    diverged: dict[str, Any] | None = None
    device: str | None = None
    wall_s: float | None = None
    train_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the keys :meth:`from_dict` read (an empty ``config`` or ``metrics`` is written back only
    #: when it was there)
    read_keys: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The record of a JSON mapping (TypeError when it is not one or has no ``run_id``)."""
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            raise TypeError(f"run record: expected a mapping with a string 'run_id', got "
                            f"{type(data).__name__}")
        typed = {f.name for f in fields(cls)} - {"extra", "read_keys"}
        known = {k: v for k, v in data.items() if k in typed and v is not None}
        return cls(**known, extra={k: v for k, v in data.items() if k not in known},
                   read_keys=frozenset(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON mapping :meth:`from_dict` read (the layout of ``runs/<run_id>.json``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("extra", "read_keys")}
        out = {k: v for k, v in out.items() if v is not None
               and (v or k not in ("config", "metrics") or k in self.read_keys)}
        return {**out, **self.extra}

    @property
    def outcome(self) -> str:
        """``ok``, ``diverged`` (the status, or a ``diverged`` entry: an untrained model's
        scores are no result) or ``failed``."""
        status = self.status or "failed"
        if status == "ok" and self.diverged:
            return "diverged"
        return status if status in DONE_STATUSES else "failed"

    @property
    def failure_reason(self) -> str:
        """Why a run that is not ``ok`` has no result ("" for an ok run)."""
        outcome = self.outcome
        if outcome == "ok":
            return ""
        if outcome == "diverged":
            div = self.diverged or {}
            if isinstance(div, dict) and "step" in div:
                return f"training diverged at step {div['step']} (loss {div.get('loss')})"
            return self.error or "training diverged"
        return self.error or "run failed"

    def _section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def dataset_name(self) -> str | None:
        """The registered dataset name (``config.dataset.name``)."""
        return self._section("dataset").get("name")

    @property
    def model_kind(self) -> str | None:
        """The registered model kind (``config.model.kind``)."""
        return self._section("model").get("kind")

    @property
    def steps(self) -> int | None:
        """Training steps (``config.train.steps``)."""
        return self._section("train").get("steps")

    @property
    def eval_samples(self) -> int | None:
        """Points drawn from the model for scoring (``config.eval_samples``)."""
        return self.config.get("eval_samples")


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

    def write_record(self, record: dict[str, Any]) -> Path:
        """Atomically write a run record (it must carry ``run_id``)."""
        return atomic_write_json(self.record_path(record["run_id"]), record)

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

    def is_finished(self, run_id: str) -> bool:
        """True when ``run_id`` has a record with status ``"ok"`` or ``"diverged"`` (failed runs
        are retried; a diverged one would diverge again)."""
        rec = self.load(run_id)
        return rec is not None and rec.get("status") in DONE_STATUSES

    def record_ids(self) -> list[str]:
        """The ids of every record file in ``runs/`` (readable or not)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.stem for p in self.runs_dir.glob("*.json") if not p.name.startswith("."))

    def move_aside(self, run_ids) -> Path:
        """Move the records (and samples) of ``run_ids`` and the current ``suite.json`` into
        ``stale/<UTC time>/``; nothing is deleted. Returns that folder."""
        from datetime import datetime, timezone

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = self.root / "stale" / stamp
        (dest / "runs").mkdir(parents=True, exist_ok=False)
        for rid in run_ids:
            for path in (self.record_path(rid), self.samples_path(rid)):
                if path.exists():
                    os.replace(path, dest / "runs" / path.name)
        if (self.root / "suite.json").exists():
            os.replace(self.root / "suite.json", dest / "suite.json")
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
            if rec is None or "run_id" not in rec or rec["run_id"] != path.stem:
                if rec is not None:
                    logger.warning("ignoring %s: not a run record", path)
                continue
            out.append(rec)
        order = {rid: i for i, rid in enumerate((self.read_suite() or {}).get("run_ids", []))}
        out.sort(key=lambda r: (order.get(r["run_id"], len(order)), str(r.get("dataset")),
                                str(r.get("model")), r.get("seed", 0), r["run_id"]))
        return out

    def current_records(self) -> list[RunRecord]:
        """The records of the suite this folder belongs to (see :meth:`current_and_stale`),
        typed."""
        return [RunRecord.from_dict(r) for r in self.current_and_stale()[0]]

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
