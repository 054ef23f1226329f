"""Shared pytest setup: Hypothesis profiles.

The fast derandomized ``ci`` profile is the default; set ``DENSITYLAB_HYPOTHESIS_PROFILE=thorough``
for a long random search (see ``densitylab.testing.register_profiles`` and docs/testing.md).
"""

from densitylab.testing import register_profiles

register_profiles()


import pytest  # noqa: E402

from densitylab._runtime import torch_threads  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread: tiny networks gain nothing from more threads,
    and a contended thread pool on a shared machine makes them many times slower.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    with torch_threads(1):
        yield
