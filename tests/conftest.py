"""Shared pytest setup: Hypothesis profiles.

The fast derandomized ``ci`` profile is the default; set ``DENSITYLAB_HYPOTHESIS_PROFILE=thorough``
for a long random search (see ``densitylab.testing.register_profiles`` and docs/testing.md).
"""

from densitylab.testing import register_profiles

register_profiles()


import os  # noqa: E402

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402  (a dependency of torch)

from densitylab._runtime import torch_threads  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread: tiny networks gain nothing from more threads,
    and a contended thread pool on a shared machine makes them many times slower.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    with torch_threads(1):
        yield


def _shared_cache_dir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # shared by the workers of one run
        root = root.parent
    path = root / "densitylab-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _test_run_cache(tmp_path_factory):
    """Tests never write to the user's cache: ``DENSITYLAB_CACHE`` points at one folder per
    test run, so anything cached (the digit classifier) is computed once per run."""
    path = _shared_cache_dir(tmp_path_factory)
    old = os.environ.get("DENSITYLAB_CACHE")
    os.environ["DENSITYLAB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DENSITYLAB_CACHE", None)
    else:
        os.environ["DENSITYLAB_CACHE"] = old


@pytest.fixture(scope="session")
def classifier_cache(_test_run_cache):
    """The run's cache folder, holding the seed-0 digit classifier.

    Training it costs tens of CPU seconds, so it is trained once per run: under pytest-xdist
    a file lock lets the first worker train while the others wait and then load it from disk.
    """
    from densitylab import images

    with FileLock(str(_test_run_cache) + ".lock"):
        images.get_classifier(seed=0, cache=_test_run_cache)
    return _test_run_cache
