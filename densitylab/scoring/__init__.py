"""The suite's score stage: what a metric sees of a run (:class:`EvalContext`), how a metric is
declared (:class:`MetricSpec`: parameters with their constraints, and a :class:`ValueInfo` for
each value it reports), the built-in metrics, and :func:`evaluate_metrics`, which scores one run.

Adding a metric: write ``fn(context, **params) -> {value: float}`` and its :class:`MetricSpec`
in one module, and register it: a line in :data:`BUILTIN_METRICS` for a built-in, or
``densitylab.suite.register_metric(SPEC)`` in a suite's plugin module. The suite's checker, the
report's tables, explanations, figures and headline tests all read the spec.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .._runtime import logger
from .constraints import (
    Choice,
    Constraint,
    Integer,
    Keyword,
    ListOf,
    NoneValue,
    Number,
    Positive,
    Probability,
)
from .context import EvalContext, derive_seed, sample_points
from .copying import CALIBRATION, DATA_COPYING
from .images import BITS_PER_DIM, FEATURE_METRICS
from .likelihood import KL_MC, LOG_LIKELIHOOD
from .modes import MODE_COVERAGE, STACKED_MODES
from .spec import HIGHER, LOWER, TARGET, MetricSpec, Param, ValueInfo
from .two_sample import C2ST, ENERGY_DISTANCE, KL_KNN, MMD, PRD_CURVE, PRDC, SLICED_WASSERSTEIN

__all__ = ["BUILTIN_METRICS", "MetricSpec", "Param", "ValueInfo", "HIGHER", "LOWER", "TARGET",
           "Constraint", "Choice", "Integer", "Keyword", "ListOf", "NoneValue", "Number",
           "Positive", "Probability", "EvalContext", "derive_seed", "sample_points",
           "builtin_metric", "evaluate_metrics", "labelled_value"]

#: Every built-in metric, in the order ``densitylab list`` shows them.
BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MODE_COVERAGE,
    MMD,
    KL_KNN,
    LOG_LIKELIHOOD,
    KL_MC,
    PRDC,
    STACKED_MODES,
    DATA_COPYING,
    CALIBRATION,
    PRD_CURVE,
    FEATURE_METRICS,
    C2ST,
    SLICED_WASSERSTEIN,
    ENERGY_DISTANCE,
    BITS_PER_DIM,
)

_BY_NAME = {spec.name: spec for spec in BUILTIN_METRICS}


def builtin_metric(name: str) -> MetricSpec:
    """The built-in metric ``name`` (ValueError listing the built-in names otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; expected one of "
                         f"{', '.join(_BY_NAME)}") from None


def evaluate_metrics(ctx: EvalContext, metric_configs: list[dict[str, Any]],
                     get_metric: Callable[[str], MetricSpec] = builtin_metric, *,
                     log_failures: bool = True,
                     seconds: dict[str, float] | None = None) -> dict[str, Any]:
    """Score ``ctx`` with each configured metric; one failure does not stop the others.

    ``get_metric`` finds a metric's spec by name (the suite passes its registry's, which knows
    registered and plugin metrics too; default: the built-ins).

    Returns ``{label: {"values": {name: float}, "details": {...}}}``, or ``{"skipped": why}``
    when the metric does not apply, or ``{"error": message}`` when it raised (logged as a
    warning unless ``log_failures`` is False: a metric failing early in training is a missing
    point of a curve, not news). ``seconds``, when given, receives each scored entry's wall time
    by label (a run record's ``metric_s``: where evaluation time goes). ``label`` is the
    entry's label (default: the metric's name); under a label other than the name the values
    are renamed by :func:`labelled_value` and the result also holds ``"metric"`` (the metric's
    name) and ``"value_names"`` (renamed value -> the metric's own value name).
    """
    out: dict[str, Any] = {}
    for mc in metric_configs:
        spec = get_metric(mc["name"])
        label = mc.get("label", spec.name)
        start = time.perf_counter()
        try:  # applies(ctx, **params) too: a failing check is this metric's error
            reason = spec.applies(ctx, **mc["params"])
            if reason is not None:
                out[label] = {"skipped": reason}
                continue
            result = spec.fn(ctx, **mc["params"])
            values, details = {}, {}
            for key, value in result.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[key] = float(value)
                else:
                    details[key] = value
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(f"non-finite value(s) for {', '.join(bad)}")
            out[label] = {"values": values, "details": details}
            if label != spec.name:
                names = {labelled_value(spec.name, label, k): k for k in values}
                out[label] = {"values": {r: values[k] for r, k in names.items()},
                              "details": details, "metric": spec.name, "value_names": names}
        except Exception as err:  # a metric failure is recorded, not fatal to the run
            if log_failures:
                logger.warning("metric %s failed: %s", label, err)
            out[label] = {"error": f"{type(err).__name__}: {err}"}
        if seconds is not None:
            seconds[label] = round(time.perf_counter() - start, 4)
    return out


def labelled_value(metric: str, label: str, value: str) -> str:
    """A value's name in results under a metric entry's ``label``.

    The value named like the metric takes the label (``mmd`` under ``mmd_modes`` ->
    ``mmd_modes``), a value prefixed by the metric's name keeps its suffix (``c2st_pvalue``
    under ``c2st_knn`` -> ``c2st_knn_pvalue``), any other value is prefixed by the label
    (``precision`` under ``prdc_k10`` -> ``prdc_k10_precision``).
    """
    if label == metric:
        return value
    if value == metric:
        return label
    if value.startswith(metric + "_"):
        return label + value[len(metric):]
    return f"{label}_{value}"
