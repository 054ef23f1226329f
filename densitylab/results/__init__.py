"""A results folder: its typed run records, the store that writes and reads them, and the
records' TensorBoard events (:mod:`densitylab.results.tensorboard`).

The suite writes a folder (:mod:`densitylab.suite`), the report reads it (:mod:`densitylab.report`);
this package is the format between them, so that reading results needs no part of the suite.

Example:
    >>> from densitylab.results import RunStore
    >>> records = RunStore("results/quick").current_records()   # doctest: +SKIP
"""

from .records import RunRecord
from .store import RunStore, load_model

__all__ = ["RunRecord", "RunStore", "load_model"]
