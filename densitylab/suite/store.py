"""Moved to :mod:`densitylab.results.store` (the results folder's format, read by the report
without the suite); this module keeps the old import path working."""

from ..results.store import *  # noqa: F403
from ..results.store import __all__  # noqa: F401
