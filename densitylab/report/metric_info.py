"""What the report knows about a metric value, read from the metrics' own declarations.

Every metric the suite can name (built-in, registered or plugin: :mod:`densitylab.suite.registry`)
declares a :class:`~densitylab.scoring.spec.ValueInfo` for each value it reports; the report's
column order, explanations, figure titles and headline tests read them here instead of keeping
tables of their own. A value under an entry's ``label`` (``mmd_modes``, an ``mmd`` entry) is
traced back to its metric's own value name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..results.records import RunRecord
from ..scoring import BUILTIN_METRICS, MetricSpec, ValueInfo, labelled_value
from ..suite import registry
from ..suite.registry import PluginError

__all__ = ["metric_specs", "metric_spec", "entry_metrics", "value_info", "direction_text",
           "declared_values", "headline_values"]


def metric_specs() -> list[MetricSpec]:
    """Every metric a suite can name: the built-ins in the order of
    :data:`~densitylab.scoring.BUILTIN_METRICS`, then the others by name (an entry-point plugin
    that fails to load is left out: the report describes what it can)."""
    names = registry.metric_names()
    builtin = [spec.name for spec in BUILTIN_METRICS if spec.name in names]
    out = []
    for name in builtin + [n for n in names if n not in builtin]:
        try:
            out.append(registry.get_metric(name))
        except (PluginError, ValueError):
            continue
    return out


def metric_spec(name: str) -> MetricSpec | None:
    """The metric named ``name``, or None when no metric has that name (e.g. a label)."""
    if name not in registry.metric_names():
        return None
    try:
        return registry.get_metric(name)
    except (PluginError, ValueError):
        return None


def _labelled_info(name: str, label: str, specs: Iterable[MetricSpec]) -> ValueInfo | None:
    """The declaration of value ``name`` under the entry label ``label``: the one metric value
    that :func:`~densitylab.scoring.labelled_value` renames to ``name`` (None if none or several
    do)."""
    found = [info for spec in specs for value, info in spec.values.items()
             if labelled_value(spec.name, label, value) == name]
    return found[0] if len(found) == 1 else None


def entry_metrics(records: Iterable[RunRecord | dict[str, Any]]) -> dict[str, str]:
    """``{label: metric}`` for every labelled metric entry of ``records`` (an ``mmd`` entry
    labelled ``mmd_modes``), so that a labelled value finds its metric's declaration."""
    out = {}
    for record in map(RunRecord.of, records):
        for label, result in record.metrics.items():
            if result.metric and result.metric != label:
                out[label] = result.metric
    return out


def value_info(name: str, group: str | None = None, metric: str | None = None
               ) -> ValueInfo | None:
    """The declaration of the value ``name`` produced by the metric entry ``group`` (a metric's
    name or an entry's label; None: any metric reporting a value of that name). ``metric``: the
    entry's metric when ``group`` is a label (:func:`entry_metrics`); without it a label's value
    is matched against every metric's (None when several match)."""
    if group and metric and metric != group:
        spec = metric_spec(metric)
        return None if spec is None else _labelled_info(name, group, [spec])
    spec = metric_spec(group) if group else None
    if spec is not None:
        return spec.value_info(name)
    specs = metric_specs()
    if group:
        return _labelled_info(name, group, specs)
    return next((spec.values[name] for spec in specs if name in spec.values), None)


def direction_text(name: str, group: str | None = None, metric: str | None = None
                   ) -> str | None:
    """Which way is better for value ``name`` (arguments as :func:`value_info`), as a figure
    says it (``"lower is better"``, ``"1 = as the target"``), or None when its metric declares
    none."""
    info = value_info(name, group, metric)
    return None if info is None else info.direction_text()


def declared_values() -> list[str]:
    """Every value name the metrics declare, metric by metric in the order of
    :func:`metric_specs`, each metric's values in their declared order (the report's column
    order)."""
    return list(dict.fromkeys(value for spec in metric_specs() for value in spec.values))


def headline_values(table: pd.DataFrame) -> list[str]:
    """The headline values of ``table`` (a tidy results table): each metric's values declared
    ``headline``, followed by the same values under any label the table holds for them (an
    ``mmd`` entry labelled ``mmd_modes``), metric by metric in the order of :func:`metric_specs`."""
    pairs = set()
    if {"metric", "group"} <= set(table.columns):
        pairs = {(m, g) for m, g in zip(table["metric"], table["group"], strict=True)
                 if isinstance(m, str) and isinstance(g, str) and m}
    names = registry.metric_names()
    labels = sorted({g for _, g in pairs if g not in names})
    out: list[str] = []
    for spec in metric_specs():
        for value, info in spec.values.items():
            if not info.headline:
                continue
            out.append(value)
            out += [labelled_value(spec.name, label, value) for label in labels
                    if (labelled_value(spec.name, label, value), label) in pairs]
    return list(dict.fromkeys(out))
