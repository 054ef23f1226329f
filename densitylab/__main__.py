"""``python -m densitylab``: the same as the ``densitylab`` command."""

import sys

from .cli import main

sys.exit(main())
