"""Names shared by the report's tables and figures: the order of metric columns and the file-name
form of a dataset label. Both :mod:`.markdown` and :mod:`.figures` import from here, so neither
imports the other."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["METRIC_ORDER", "ordered_metrics", "slug"]

#: Order of metric columns in the tables and panels; others follow in the order they appear.
METRIC_ORDER = ["modes_covered", "high_quality_fraction", "kl_modes", "mmd",
                "kl_knn_model_target", "kl_knn_target_model", "heldout_loglik", "target_loglik",
                "kl_mc_target_model", "precision", "recall", "density", "coverage"]


def ordered_metrics(metrics: Iterable[str]) -> list[str]:
    """``metrics`` without repeats, those of :data:`METRIC_ORDER` first in that order, then the
    rest as they appear (``num_modes``, a constant of the target, is left out)."""
    seen = list(dict.fromkeys(metrics))
    return [m for m in METRIC_ORDER if m in seen] + [m for m in seen if m not in METRIC_ORDER
                                                      and m != "num_modes"]


def slug(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_.-`` replaced by
    ``_``: the dataset's part of a figure's file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))
