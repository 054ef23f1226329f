"""Moved to :mod:`densitylab.results.records` (the results folder's format, read by the report
without the suite); this module keeps the old import path working."""

from ..results.records import *  # noqa: F403
from ..results.records import __all__  # noqa: F401
