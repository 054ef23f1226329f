"""What each column of the report means, worded for the metric and parameters that produced it.

The same value name can mean different things: ``high_quality_fraction`` is a share of samples
near a mode centre on a 2D Gaussian mixture (``mode_coverage``), but on stacked digits
(``stacked_modes``) it is the mean classifier confidence unless a confidence threshold was set.
So the explanation is the description the value's metric (its ``group``) declares for it, worded
for that metric's resolved parameters in the run's config, and a value explained differently on
two datasets is listed once per meaning, naming the datasets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..results.records import RunRecord
from .metric_info import metric_spec

__all__ = ["explain", "column_explanations"]


def explain(name: str, group: str, params: dict[str, Any] | None = None) -> str | None:
    """One-line meaning of value ``name`` produced by suite metric ``group`` with ``params``:
    the description its metric declares for it (:attr:`~densitylab.scoring.MetricSpec.values`),
    worded for the metric's resolved parameters.

    None for a value its metric does not declare, or a metric this process does not know.
    """
    spec = metric_spec(group)
    info = None if spec is None else spec.value_info(name)
    if info is None:
        return None
    return info.describe({**spec.defaults, **(params or {})})


def column_explanations(records: Iterable[RunRecord | dict[str, Any]],
                        order: list[str]) -> list[str]:
    """Markdown bullet lines explaining the value names in ``order`` for the finished ``records``.

    A value with one meaning across the datasets gets one line; a value whose meaning differs
    (``high_quality_fraction`` on a mixture and on stacked digits) gets one line per meaning,
    naming its datasets.
    """
    meanings: dict[str, dict[str, list[str]]] = {}
    for r in map(RunRecord.of, records):  # typed, or their JSON mappings
        params = r.metric_params()
        for group, result in r.metrics.items():
            for name in list(result.values) + result.undefined:
                text = explain(result.own_name(name), result.metric or group, params.get(group))
                if text is None:
                    continue
                datasets = meanings.setdefault(name, {}).setdefault(text, [])
                if r.dataset not in datasets:
                    datasets.append(r.dataset)
    lines = []
    for name in order:
        variants = meanings.get(name, {})
        if len(variants) == 1:
            lines.append(f"- `{name}`: {next(iter(variants))}")
        else:
            lines += [f"- `{name}` ({', '.join(map(str, ds))}): {text}"
                      for text, ds in variants.items()]
    return lines
