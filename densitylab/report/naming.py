"""Names shared by the report's tables and figures: the order of metric columns and the file-name
form of a dataset label. Both :mod:`.markdown` and :mod:`.figures` import from here, so neither
imports the other."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .metric_info import declared_values

__all__ = ["ordered_metrics", "slug"]


def ordered_metrics(metrics: Iterable[str]) -> list[str]:
    """``metrics`` without repeats: the values the metrics declare first, in their declared
    order (:func:`~densitylab.report.metric_info.declared_values`), then the rest as they
    appear (``num_modes``, a constant of the target, is left out)."""
    seen = list(dict.fromkeys(metrics))
    declared = [m for m in declared_values() if m in seen]
    return [m for m in declared + [m for m in seen if m not in declared] if m != "num_modes"]


def slug(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_.-`` replaced by
    ``_``: the dataset's part of a figure's file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))
