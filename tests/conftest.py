"""Shared pytest setup: Hypothesis profiles.

The fast derandomized ``ci`` profile is the default; set ``DENSITYLAB_HYPOTHESIS_PROFILE=thorough``
for a long random search (see ``densitylab.testing.register_profiles`` and docs/testing.md).
"""

from densitylab.testing import register_profiles

register_profiles()
