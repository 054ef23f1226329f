"""Saved models (``save_models = true``): each run's trained model kept beside its record,
loaded back by ``RunStore.load_model`` / ``suite.load_model`` / ``densitylab load``, identical to
the model the run scored (its samples for the run's sample seed equal the saved samples); and
the TensorBoard log (``tensorboard = true``) of a run holds its losses and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densitylab import models, suite
from densitylab.cli import main
from densitylab.suite import RunStore, parse_suite, run_suite
from densitylab.suite.context import derive_seed, draw

SUITE = {
    "suite": {"name": "saved", "device": "cpu", "seeds": [0, 1], "eval_samples": 200,
              "density_grid": 0, "save_models": True},
    "train": {"steps": 5, "batch_size": 32},
    "datasets": [{"name": "ring", "params": {"n_modes": 4, "std": 0.05}}],
    "models": [{"name": "vae", "params": {"latent_dim": 2, "hidden": [8]}}],
    "metrics": [{"name": "mmd"}],
}


def _suite(**options):
    data = {**SUITE, "suite": {**SUITE["suite"], **options}}
    return parse_suite(data)


def _check_models_match_their_samples(out, runs):
    store = RunStore(out)
    for spec in runs:
        rec = store.load_record(spec.run_id)
        if spec.model != "vae":
            assert rec.model_file is None  # the reference rows have no weights to keep
            continue
        assert rec.model_file == f"{spec.run_id}.model.pt"
        model = suite.load_model(out, spec.run_id)
        assert isinstance(model, models.VAE) and model.config["latent_dim"] == 2
        saved = store.load_samples(spec.run_id)["samples"]
        with torch.no_grad():
            again = draw(model, len(saved), derive_seed(spec.seed, "sample"))
        np.testing.assert_array_equal(again.numpy(), saved)


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])
def test_a_saved_model_is_the_model_the_run_scored(tmp_path, batched):
    cfg = _suite(batch_seeds=batched)
    result = run_suite(cfg, tmp_path, show_progress=False)
    assert result.failed == []
    if batched:
        rec = RunStore(tmp_path).load_record(next(r.run_id for r in cfg.runs if r.model == "vae"))
        assert rec.batched is not None  # the seeds really trained as one batched model
    _check_models_match_their_samples(tmp_path, cfg.runs)


def test_saving_models_resumes_and_changes_no_other_suites_ids(tmp_path):
    assert _suite(save_models=False).run_ids() == parse_suite(
        {**SUITE, "suite": {k: v for k, v in SUITE["suite"].items() if k != "save_models"}}
    ).run_ids()
    cfg = _suite()
    assert set(cfg.run_ids()).isdisjoint(_suite(save_models=False).run_ids())
    run_suite(cfg, tmp_path, show_progress=False)
    assert len(run_suite(cfg, tmp_path, show_progress=False).skipped) == len(cfg.runs)


def test_load_names_what_it_loaded_and_why_a_run_has_no_model(tmp_path, capsys):
    cfg = _suite()
    run_suite(cfg, tmp_path, show_progress=False)
    vae = next(r for r in cfg.runs if r.model == "vae")
    assert main(["load", str(tmp_path), vae.run_id[:8]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loaded VAE(") and vae.run_id in out and "ring/vae/0" in out
    oracle = next(r for r in cfg.runs if r.model == "oracle")
    assert main(["load", str(tmp_path), oracle.run_id]) == 2
    assert "model kind 'oracle' has no save(path)" in capsys.readouterr().err
    assert main(["load", str(tmp_path), "zzzz"]) == 2
    assert "no run 'zzzz'" in capsys.readouterr().err
    store = RunStore(tmp_path)
    twin = store.runs_dir / f"{vae.run_id[:6]}ffffff.json"
    twin.write_bytes(store.record_path(vae.run_id).read_bytes())
    with pytest.raises(ValueError, match="is a prefix of 2 runs"):
        store.load_model(vae.run_id[:6])


def test_a_run_without_save_models_says_how_to_get_one(tmp_path):
    cfg = _suite(save_models=False)
    run_suite(cfg, tmp_path, show_progress=False, only="*/vae/0")
    with pytest.raises(FileNotFoundError, match="did not set save_models = true"):
        suite.load_model(tmp_path, next(r.run_id for r in cfg.runs if r.label == "ring/vae/0"))


def test_tensorboard_events_hold_the_losses_and_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _suite(save_models=False, tensorboard=True, references=False, seeds=[0])
    run_suite(cfg, tmp_path, show_progress=False)
    spec = cfg.runs[0]
    folder = tmp_path / "tb" / "ring" / "vae" / f"seed0-{spec.run_id}"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"metrics/mmd", "train/loss", "time/train_s"} <= tags
    rec = RunStore(tmp_path).load_record(spec.run_id)
    (point,) = events.Scalars("metrics/mmd")
    assert point.step == 5 and point.value == pytest.approx(rec.metrics["mmd"].values["mmd"],
                                                            rel=1e-6)
    assert "run/text_summary" in events.Tags()["tensors"]  # the run's facts as text


def test_tensorboard_without_tensorboard_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    cfg = _suite(save_models=False, tensorboard=True)
    with pytest.raises(ImportError, match=r"pip install 'densitylab\[tensorboard\]'"):
        run_suite(cfg, tmp_path, show_progress=False)
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_force_moves_a_stale_runs_model_aside_with_its_record(tmp_path):
    old = _suite(references=False)
    run_suite(old, tmp_path, show_progress=False)
    new = parse_suite({**SUITE, "suite": {**SUITE["suite"], "references": False},
                       "train": {"steps": 3, "batch_size": 32}})
    result = run_suite(new, tmp_path, show_progress=False, force=True)
    moved = {p.name for p in (result.moved_to / "runs").iterdir()}
    assert {f"{rid}.model.pt" for rid in old.run_ids()} <= moved  # never deleted
    kept = {p.name for p in RunStore(tmp_path).runs_dir.glob("*.model.pt")}
    assert kept == {f"{rid}.model.pt" for rid in new.run_ids()}


def test_a_run_logs_its_losses_while_it_trains_and_trains_the_same(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from densitylab.suite.tblog import LIVE_POINTS, LiveLog

    cfg = _suite(save_models=False, tensorboard=True, references=False, seeds=[0])
    spec = cfg.runs[0]
    live = LiveLog(RunStore(tmp_path / "live"), spec, steps=2 * LIVE_POINTS)
    for step in range(2 * LIVE_POINTS):
        assert live(step, {"loss": float(step)}, None) is False  # never stops the fit
    live.curves(100, {"mmd": 0.5})
    live.close()
    events = EventAccumulator(str(live.folder))
    events.Reload()
    logged = events.Scalars("train/loss")
    assert [p.step for p in logged] == list(range(2, 2 * LIVE_POINTS + 1, 2))
    assert all(p.value == p.step - 1 for p in logged)  # the loss of that step
    assert [(p.step, p.value) for p in events.Scalars("curves/mmd")] == [(100, 0.5)]

    # a one-by-one run with its live log computes what it computes without one
    run_suite(cfg, tmp_path / "with", show_progress=False)
    run_suite(_suite(save_models=False, references=False, seeds=[0]), tmp_path / "without",
              show_progress=False)
    with_log = RunStore(tmp_path / "with").load_record(spec.run_id)
    without = RunStore(tmp_path / "without").load_record(spec.run_id)
    assert with_log.metrics["mmd"].values == without.metrics["mmd"].values
    assert with_log.history.to_dict() == without.history.to_dict()
