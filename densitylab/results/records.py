"""Typed run records: what one run of a suite wrote (``runs/<run_id>.json``), as dataclasses.

:class:`RunRecord` is built by the score stage (:mod:`densitylab.suite.score`), written by the
store (:class:`densitylab.results.store.RunStore`) and read by the report. Its nested parts are
typed too: each metric's :class:`MetricResult`, the training :class:`LossSummary`, the
``eval_every`` :class:`Curves`, the :class:`Divergence` of a diverged run and the
:class:`BatchInfo` of a run trained as one seed of a batched model.

Every type reads the JSON layout with ``from_dict`` and writes it back with ``to_dict``; the
layout is the one earlier versions wrote (same key names), so old results folders load and old
readers read new records. ``from_dict`` is tolerant: a key without a field, a key written as
null, and a nested value of the wrong shape are kept in ``extra`` as written (so ``to_dict``
gives back the same mapping), never an error; only a record without a string ``run_id`` is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["RunRecord", "MetricResult", "LossSummary", "LossSeries", "Curves", "Divergence",
           "BatchInfo", "RECORD_FORMAT", "DONE_STATUSES"]

#: Layout version written in new records. 1: the first layout; 2: the samples file also holds the
#: run's reference (target) sample and the target's mode centres and stds (same JSON keys, plus
#: ``samples_file``).
RECORD_FORMAT = 2

#: Statuses of a finished run: not run again when the suite is (a diverged run diverges again
#: from the same seed). A "failed" run is retried.
DONE_STATUSES = ("ok", "diverged")


def _nested(cls: type, *, mapping: bool = False, default: Any = None, key: str | None = None):
    """A field holding a typed JSON part ``cls`` (or a mapping of names to them)."""
    meta = {"type": cls, "mapping": mapping}
    if key is not None:
        meta["key"] = key
    if mapping:
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def _json_key(f) -> str:
    return f.metadata.get("key", f.name)


@dataclass
class _JsonPart:
    """from_dict / to_dict between a JSON mapping and the dataclass fields of a subclass.

    ``extra`` holds what ``from_dict`` did not type; ``read_keys`` the keys it read (an empty
    container is written back only when it was there, a None field never).
    """

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)
    read_keys: frozenset[str] = field(default=frozenset(), repr=False, compare=False,
                                      kw_only=True)

    @classmethod
    def _typed_fields(cls):
        return [f for f in fields(cls) if f.name not in ("extra", "read_keys")]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The typed part of a JSON mapping (TypeError when ``data`` is not a mapping)."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for f in cls._typed_fields():
            key = _json_key(f)
            if key not in data or data[key] is None:
                continue
            value = _decode(f, data[key])
            if value is not _UNREAD:
                kwargs[f.name] = value
        used = {_json_key(f) for f in cls._typed_fields() if f.name in kwargs}
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in used},
                   read_keys=frozenset(data))

    def keep_empty(self, *keys: str) -> None:
        """Write the JSON ``keys`` even when empty (a diverged run's ``metrics``: it was scored
        with nothing, which a reader may look up)."""
        self.read_keys = self.read_keys | frozenset(keys)

    def to_dict(self) -> dict[str, Any]:
        """The JSON mapping of this part (the layout :meth:`from_dict` reads)."""
        out: dict[str, Any] = {}
        for f in self._typed_fields():
            value, key = getattr(self, f.name), _json_key(f)
            if value is None or (isinstance(value, dict | list) and not value
                                 and key not in self.read_keys):
                continue
            out[key] = _encode(f, value)
        return {**out, **self.extra}


_UNREAD = object()


def _decode(f, value: Any) -> Any:
    cls = f.metadata.get("type")
    if cls is None:
        return value
    if f.metadata["mapping"]:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            return _UNREAD
        return {k: cls.from_dict(v) for k, v in value.items()}
    return cls.from_dict(value) if isinstance(value, dict) else _UNREAD


def _encode(f, value: Any) -> Any:
    if f.metadata.get("type") is None:
        return value
    if f.metadata["mapping"]:
        return {k: v.to_dict() for k, v in value.items()}
    return value.to_dict()


@dataclass
class MetricResult(_JsonPart):
    """One metric entry's result: its ``values`` (name -> float) and ``details``, or why it was
    ``skipped`` (not applicable), or the ``error`` it raised. Under a label other than the
    metric's name, ``metric`` is the metric's name and ``value_names`` maps each renamed value to
    the metric's own value name."""

    values: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    metric: str | None = None
    value_names: dict[str, str] = field(default_factory=dict)

    @property
    def undefined(self) -> list[str]:
        """Value names the metric recorded as undefined (a ``<name>_note`` detail, no value)."""
        return [k[: -len("_note")] for k in self.details if k.endswith("_note")]

    def own_name(self, value: str) -> str:
        """The metric's own name of ``value`` (a labelled entry renames its values)."""
        return self.value_names.get(value, value)


@dataclass
class LossSeries(_JsonPart):
    """One training loss averaged into chunks: the last ``step`` of each chunk and its mean."""

    step: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)


@dataclass
class LossSummary(_JsonPart):
    """A run's training losses as recorded (JSON key ``history``): ``steps`` trained, each
    loss's averaged ``series`` and its ``final`` value (mean of the last 5 % of steps);
    :func:`densitylab.suite.score.summarize_history` builds it from a model's
    :class:`densitylab.models.History`."""

    steps: int = 0
    series: dict[str, LossSeries] = _nested(LossSeries, mapping=True)
    final: dict[str, float] = field(default_factory=dict)


@dataclass
class Curves(_JsonPart):
    """Metric values during training (``eval_every``): the ``step`` of each evaluation and each
    value's series (NaN where a metric gave no value at that step)."""

    step: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Divergence(_JsonPart):
    """Where training hit a non-finite loss: the ``step`` and the ``loss`` there."""

    step: int | None = None
    loss: float | None = None

    def __bool__(self) -> bool:  # an empty entry, as an old writer may leave, is no divergence
        return bool(self.to_dict())


@dataclass
class BatchInfo(_JsonPart):
    """A run trained as one seed of a batched model: the batch's ``seeds`` and its whole training
    time ``train_s_total`` (the run's ``train_s`` is that divided by the number of seeds)."""

    seeds: list[int] = field(default_factory=list)
    train_s_total: float | None = None


@dataclass
class RunRecord(_JsonPart):
    """One run's record (``runs/<run_id>.json``) as typed fields.

    Built by :func:`densitylab.suite.score.score_run`, written by
    :meth:`densitylab.results.store.RunStore.write_record`, read by the report. Keys without a
    field here, and keys written as null, are kept in ``extra``, so :meth:`to_dict` gives back the
    mapping :meth:`from_dict` read.
    """

    run_id: str
    format: int | None = None  # layout version (:data:`RECORD_FORMAT`)
    suite: str | None = None
    dataset: str | None = None  # the dataset's label in the suite
    model: str | None = None  # the model's label in the suite
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the resolved run config
    versions: dict[str, str] = field(default_factory=dict)
    #: the code that produced the run: version, git commit, fingerprint of the model, dataset
    #: and metric source (:mod:`densitylab.suite.provenance`); empty in records written before
    #: densitylab recorded it (unknown code)
    code: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    device: str | None = None
    threads: int | None = None
    status: str | None = None  # as written: "ok", "diverged" or "failed"
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, MetricResult] = _nested(MetricResult, mapping=True)
    history: LossSummary | None = _nested(LossSummary)
    curves: Curves | None = _nested(Curves)
    diverged: Divergence | None = _nested(Divergence)
    batched: BatchInfo | None = _nested(BatchInfo)
    train_s: float | None = None
    eval_s: float | None = None
    #: wall seconds of each metric of ``eval_s``, by label (absent in records written before)
    metric_s: dict[str, float] | None = None
    #: steps trained, written at the top level of a scored or diverged run (JSON key ``steps``;
    #: :attr:`steps` reads the configured number)
    trained_steps: int | None = field(default=None, metadata={"key": "steps"})
    #: the name of the samples file in ``runs/`` (None when no samples were saved or the record
    #: predates format 2)
    samples_file: str | None = None
    #: the name of the saved model file in ``runs/`` (``save_models = true``; None otherwise, and
    #: for a model that cannot be saved)
    model_file: str | None = None
    wall_s: float | None = None
    finished_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The record of a JSON mapping (TypeError when it is not one or has no ``run_id``)."""
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            raise TypeError(f"run record: expected a mapping with a string 'run_id', got "
                            f"{type(data).__name__}")
        return super().from_dict(data)

    @classmethod
    def of(cls, record: RunRecord | dict[str, Any]) -> RunRecord:
        """``record`` itself when typed, else the record of its JSON mapping (a partial mapping,
        such as a test's hand-made one, may leave out ``run_id``: it reads as "")."""
        if isinstance(record, RunRecord):
            return record
        if isinstance(record, dict) and "run_id" not in record:
            record = {**record, "run_id": ""}
        return cls.from_dict(record)

    @property
    def outcome(self) -> str:
        """``ok``, ``diverged`` (the status, or a ``diverged`` entry: an untrained model's
        scores are no result) or ``failed``."""
        status = self.status or "failed"
        if status == "ok" and self.diverged:
            return "diverged"
        return status if status in DONE_STATUSES else "failed"

    @property
    def is_ok(self) -> bool:
        """True when the run has a result (:attr:`outcome` is ``ok``)."""
        return self.outcome == "ok"

    def summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """What a runner reports of this stored run: id, ``dataset/model/seed`` label, status,
        wall seconds (``wall_s``, else the record's own) and error."""
        return {"run_id": self.run_id, "label": f"{self.dataset}/{self.model}/{self.seed}",
                "status": self.status,
                "wall_s": float(self.wall_s or 0.0) if wall_s is None else wall_s,
                "error": self.error}

    @property
    def failure_reason(self) -> str:
        """Why a run that is not ``ok`` has no result ("" for an ok run)."""
        outcome = self.outcome
        if outcome == "ok":
            return ""
        if outcome == "diverged":
            if self.diverged and "step" in self.diverged.to_dict():
                return f"training diverged at step {self.diverged.step} (loss " \
                       f"{self.diverged.loss})"
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
        return self.model_config.get("kind")

    @property
    def model_config(self) -> dict[str, Any]:
        """The resolved model entry (``config.model``: kind, label, params; empty when absent)."""
        return self._section("model")

    @property
    def train(self) -> dict[str, Any]:
        """The resolved training options (``config.train``; empty when absent)."""
        return self._section("train")

    @property
    def steps(self) -> int | None:
        """Training steps (``config.train.steps``)."""
        return self.train.get("steps")

    @property
    def batch_size(self) -> int | None:
        """Training batch size (``config.train.batch_size``)."""
        return self.train.get("batch_size")

    @property
    def eval_samples(self) -> int | None:
        """Points drawn from the model for scoring (``config.eval_samples``)."""
        return self.config.get("eval_samples")

    @property
    def metric_configs(self) -> list[dict[str, Any]]:
        """The resolved ``[[metrics]]`` entries of the run (``config.metrics``)."""
        value = self.config.get("metrics")
        return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []

    def metric_params(self) -> dict[str, dict[str, Any]]:
        """Each metric entry's parameters by the label its result is recorded under."""
        return {m.get("label", m.get("name")): m.get("params") or {}
                for m in self.metric_configs}

    def values(self, group: str) -> dict[str, float]:
        """The values of metric ``group`` (empty when it gave none: skipped, failed, absent)."""
        result = self.metrics.get(group)
        return result.values if result is not None else {}

