"""Moved to :mod:`densitylab.results.tensorboard` (files of the results folder, written without
the suite); this module keeps the old import path working."""

from ..results.tensorboard import *  # noqa: F403
from ..results.tensorboard import LIVE_POINTS, __all__  # noqa: F401
