"""Results folders written before each run saved its reference sample and the target's modes.

Since record format 2 a run's samples file also holds ``reference`` (its own target sample)
and ``mode_means`` / ``mode_stds`` (see :func:`densitylab.suite.evaluate.saved_arrays`), so the
report draws every figure from the folder alone. A folder written earlier (format 1, such as
``docs/pacgan2d``) lacks them; for such a run only, :func:`legacy_target` rebuilds the dataset
from the run's config, as the report did then, so that the old folder's figures stay as they
were. It is the one place where the report builds a dataset.
"""

from __future__ import annotations

import numpy as np

from ..results.records import RunRecord
from ..suite import registry

__all__ = ["legacy_target", "LEGACY_SEED"]

#: The seed of the fixed target draw that format-1 reports drew behind the samples.
LEGACY_SEED = 12345


def legacy_target(record: RunRecord, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(points, mode_centres)`` for a run saved without them: ``n`` target points drawn with
    :data:`LEGACY_SEED` (none when ``n`` is 0) and the target's mode centres (None when it has
    none), from the dataset rebuilt out of ``record.config``. ``(None, None)`` when the dataset
    cannot be built here (a dataset of a plugin that is not installed, a missing image file):
    the figure is then drawn without it."""
    ds = record.config.get("dataset")
    try:
        target = registry.make_dataset(ds["name"], ds["params"])
    except Exception:  # a dataset not available here: draw without it
        return None, None
    points = None
    if n:
        real = target.sample(n, seed=LEGACY_SEED)
        if isinstance(real, tuple | list):  # (images, labels)
            real = real[0]
        points = np.asarray(real.detach().cpu().numpy() if hasattr(real, "detach") else real)
    means = getattr(target, "means", None)
    return points, (None if means is None else means.detach().cpu().numpy())
