"""The typed run record: it reads the JSON layout the suite writes and gives back the same."""

from __future__ import annotations

import json
from pathlib import Path

import _suite_fakes  # noqa: F401  (registers the fake models the tiny suite uses)
import pytest

from densitylab.results.store import RunRecord, RunStore
from densitylab.suite import parse_suite, run_suite


def test_records_written_by_a_suite_round_trip_unchanged(tmp_path):
    cfg = parse_suite({
        "suite": {"name": "t", "seeds": [0], "eval_samples": 50, "references": False},
        "train": {"steps": 2, "batch_size": 8},
        "datasets": [{"name": "ring"}],
        "models": [{"name": "g", "kind": "gaussfit"}],
        "metrics": [{"name": "mmd"}],
    })
    run_suite(cfg, tmp_path, show_progress=False)
    (path,) = (tmp_path / "runs").glob("*.json")
    data = json.loads(path.read_text())
    rec = RunRecord.from_dict(data)
    assert rec.to_dict() == data
    assert (rec.run_id, rec.dataset, rec.model, rec.seed) == (path.stem, "ring", "g", 0)
    assert (rec.dataset_name, rec.model_kind, rec.steps, rec.eval_samples) == (
        "ring", "gaussfit", 2, 50)
    assert rec.outcome == "ok" and rec.failure_reason == ""
    assert set(rec.metrics["mmd"].values) == {"mmd"} and rec.values("mmd") == rec.metrics[
        "mmd"].values
    assert rec.history.steps == 2 and list(rec.history.series) == ["loss"]
    assert rec.samples_file == f"{path.stem}.samples.npz" and rec.extra == {}
    assert [r.run_id for r in RunStore(tmp_path).current_records()] == [rec.run_id]


def test_outcome_and_failure_reason():
    diverged = RunRecord.from_dict({"run_id": "a", "status": "ok",
                                    "diverged": {"step": 7, "loss": "nan"}})
    assert diverged.outcome == "diverged"
    assert diverged.failure_reason == "training diverged at step 7 (loss nan)"
    failed = RunRecord.from_dict({"run_id": "b", "status": "failed", "error": "E: x"})
    assert (failed.outcome, failed.failure_reason) == ("failed", "E: x")
    assert RunRecord.from_dict({"run_id": "c"}).outcome == "failed"  # no status: no result
    nulls = {"run_id": "d", "status": "ok", "error": None, "config": {}}
    assert RunRecord.from_dict(nulls).to_dict() == nulls


@pytest.mark.parametrize("bad", [[], {"status": "ok"}, {"run_id": 3}])
def test_a_mapping_without_a_run_id_is_refused(bad):
    with pytest.raises(TypeError, match="run record: expected a mapping with a string 'run_id'"):
        RunRecord.from_dict(bad)


#: The pacgan2d records of the earlier training loop, kept apart when the folder was re-run with
#: the authors' loop: a committed folder of format-1 records written by earlier code.
PACGAN2D = (Path(__file__).resolve().parents[1] / "docs" / "pacgan2d" / "stale"
            / "20261206T205719.599268Z")


def test_the_committed_format_1_folder_loads_typed_and_round_trips():
    store = RunStore(PACGAN2D)
    raw = store.records()
    assert len(raw) >= 43
    for data in raw:
        assert RunRecord.from_dict(data).to_dict() == data
    rec = store.load_record("04f3edfd1480")  # ring / gan / seed 0 of the pacgan2d suite
    assert (rec.suite, rec.dataset, rec.model, rec.seed, rec.format) == (
        "pacgan2d", "ring", "gan", 0, 1)
    assert rec.outcome == "ok" and rec.samples_file is None and not rec.diverged
    assert rec.metrics["mode_coverage"].values == {
        "high_quality_fraction": 0.844, "kl_modes": 0.16197053179562726, "modes_covered": 8.0,
        "num_modes": 8.0}
    assert rec.metrics["mode_coverage"].details["counts"] == [163, 402, 51, 213, 125, 507, 374,
                                                               275]
    assert rec.values("mmd") == {"mmd": 0.006549459340888797}
    assert rec.metrics["mmd_modes"].own_name("mmd_modes") == "mmd"
    assert rec.curves.step == list(range(1000, 10001, 1000))
    assert rec.curves.values["modes_covered"][:2] == [6.0, 7.0]
    assert set(rec.history.series) == {"d_loss", "g_loss"} and rec.trained_steps == 10000
    assert (rec.steps, rec.batch_size, rec.eval_samples, rec.train_s) == (
        10000, 100, 2500, 2669.9358189920003)


def test_a_malformed_part_is_kept_as_written():
    data = {"run_id": "e", "status": "ok", "metrics": ["not", "a", "mapping"],
            "history": "lost", "curves": {"step": [1], "values": {"x": [0.5]}, "new": 1}}
    rec = RunRecord.from_dict(data)
    assert rec.metrics == {} and rec.history is None and rec.curves.extra == {"new": 1}
    assert rec.to_dict() == data
