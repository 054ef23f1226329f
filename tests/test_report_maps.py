"""The witness-map figure draws, from a results folder alone, where a model misses mass."""

from __future__ import annotations

import pytest
from _targets import ring_without

from densitylab.report.maps import c2st_map_figure, witness_figure
from densitylab.results.store import RunRecord, RunStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _record(run_id, model="gan"):
    return RunRecord.of({"run_id": run_id, "dataset": "ring", "model": model, "seed": 0,
                         "status": "ok"})


@pytest.fixture
def store(tmp_path):
    """Run "a": a ring model without mode 3 beside a target sample; run "b": no target sample."""
    p, q = ring_without(3)
    store = RunStore(tmp_path)
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    store.write_samples("a", {"samples": q.sample(600, seed=1).numpy(),
                              "reference": p.sample(600, seed=2).numpy(),
                              "mode_means": p.means.numpy()})
    store.write_samples("b", {"samples": q.sample(10, seed=1).numpy()})  # no target sample
    return store


def test_witness_figure_outlines_a_dropped_mode_and_skips_runs_without_points(store):
    fig = witness_figure([_record("a"), _record("b", "vae"), _record("c")], store,
                         grid_size=32, num_permutations=100)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 1
    assert "ring / gan" in panels[0].get_title() and "bandwidth" in panels[0].get_title()
    # the colour map, at least one significance outline, the mode centres
    assert len(panels[0].collections) >= 3
    assert witness_figure([_record("b")], store) is None


def test_c2st_map_figure_shades_where_there_is_data_and_skips_runs_without_points(store):
    fig = c2st_map_figure([_record("a"), _record("b", "vae"), _record("c")], store,
                          grid_size=32)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 1 and "C2ST accuracy" in panels[0].get_title()
    shaded = panels[0].collections[0].get_array()
    # cells without data are blank (the values themselves: tests/test_metrics_c2st_map.py)
    assert 0 < shaded.count() < shaded.size
    assert c2st_map_figure([_record("b")], store) is None
