"""The typed run record: it reads the JSON layout the suite writes and gives back the same."""

from __future__ import annotations

import json

import _suite_fakes  # noqa: F401  (registers the fake models the tiny suite uses)
import pytest

from densitylab.suite import parse_suite, run_suite
from densitylab.suite.store import RunRecord, RunStore


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
    assert set(rec.metrics["mmd"]["values"]) == {"mmd"}
    assert "versions" in rec.extra  # untyped keys are kept as written
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
