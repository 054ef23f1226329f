"""benchmarks/perf/toy2d_floor.py: the phases its FLOP count is split into, and what it
leaves behind."""

from __future__ import annotations

import pytest
from _scripts import benchmark_script

from densitylab.scoring import BUILTIN_METRICS
from densitylab.suite import evaluate
from densitylab.suite.config import load_suite
from densitylab.suite.plan import group_runs, select_runs

SUITE = """
[suite]
name = "floor-test"
seeds = 2
eval_samples = 200
references = false
threads = 1
batch_seeds = true

[train]
steps = 3
batch_size = 32

[[datasets]]
name = "ring"

[[models]]
name = "gan"
kind = "gan"
params = { latent_dim = 2, hidden = [16] }

[[metrics]]
name = "mode_coverage"

[[metrics]]
name = "mmd"
"""


@pytest.fixture(scope="module")
def floor():
    return benchmark_script("toy2d_floor", folder="perf")


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    return load_suite(str(path), device="cpu").runs


def test_training_of_a_batched_unit_counts_each_seed_once(floor, runs, tmp_path):
    """Two seeds trained as one batched model make the products of two single fits: twice the
    training FLOPs of the unit of one seed (trained alone), and the metrics are counted apart."""
    both = group_runs(select_runs(runs, "ring/gan/[01]"))
    one = group_runs(select_runs(runs, "ring/gan/0"))
    assert [len(u) for u in both] == [2] and [len(u) for u in one] == [1]
    two_seeds = floor.count_unit(both[0], str(tmp_path / "a"))
    one_seed = floor.count_unit(one[0], str(tmp_path / "b"))
    assert set(two_seeds) == {"train", "mmd", "mode_coverage", floor.OTHER}
    assert one_seed["train"] > 0 and one_seed[floor.OTHER] > 0  # the GAN's samples
    assert two_seeds["train"] == 2 * one_seed["train"]
    assert two_seeds["mmd"] == pytest.approx(2 * one_seed["mmd"], rel=0.05)


def test_the_wrapped_functions_are_restored(floor, runs, tmp_path):
    before = [spec.fn for spec in BUILTIN_METRICS], evaluate.train_unit
    floor.count_unit(group_runs(select_runs(runs, "ring/gan/0"))[0], str(tmp_path))
    assert [spec.fn for spec in BUILTIN_METRICS] == before[0]
    assert evaluate.train_unit is before[1]


def test_measured_run_seconds_sum_the_records(floor, runs, tmp_path):
    evaluate.execute_batched_runs(group_runs(runs)[0], tmp_path)
    row = floor.measured_run_seconds(tmp_path)[("ring", "gan")]
    assert row["runs"] == 2
    assert row["train"] > 0
    assert row["eval"] >= row["metric:mmd"] + row["metric:mode_coverage"] > 0
