"""The metric sanity battery: a reduced run, its determinism, its files, and that it detects a
known-bad metric (so a pass means something)."""

from __future__ import annotations

import json

import pytest
import torch

from densitylab.metrics import sanity

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_FAST = {"targets": ("ring",), "n": 200, "reps": 3}


def _pick(*groups):
    return [s for s in sanity.default_scores() if s.group in groups]


def _mean_gap(real, fake, target):
    """A known-bad discrepancy: squared distance between the means. Blind to the modes' width
    (sharp and blurry modes keep the mean), so it must fail ``sharp_blurry``."""
    gap = torch.as_tensor(real).double().mean(0) - torch.as_tensor(fake).double().mean(0)
    return {"mean_gap": float(gap @ gap)}


def test_reduced_battery_statuses_and_determinism(tmp_path):
    scores = _pick("energy_distance", "prdc")
    rep = sanity.run(tmp_path, scores=scores, **_FAST)
    assert {r.status for r in rep.results} <= {"pass", "fail", "n/a"}
    assert len(rep.results) == len(scores) * len(sanity.CHECKS)
    # roles decide applicability: symmetric scores have no swap check, fidelity scores no
    # mode-dropping check, diversity scores no mode-invention check
    assert rep.status("energy_distance", "swap") == "n/a"
    assert rep.status("precision", "drop_modes") == "n/a"
    assert rep.status("recall", "invent_modes") == "n/a"
    # the energy distance sees identical sets, dropped modes and a growing shift
    for check in ("identical", "independent", "drop_modes", "translate"):
        assert rep.status("energy_distance", check) == "pass", check
    # PRDC's documented direction: on a fake missing modes, recall(real, fake) is the low one
    assert rep.status("recall", "swap") == "pass"
    again = sanity.run(scores=scores, **_FAST)
    assert [(r.score, r.check, r.status, r.detail) for r in again.results] == \
        [(r.score, r.check, r.status, r.detail) for r in rep.results]
    md = (tmp_path / "metric-checks.md").read_text()
    assert "| energy_distance |" in md and "## Failures" in md
    data = json.loads((tmp_path / "metric-checks.json").read_text())
    assert data["settings"]["n"] == 200 and len(data["results"]) == len(rep.results)


def test_battery_detects_a_known_bad_metric():
    bad = sanity.Score("mean_gap", _mean_gap, "mean_gap", "discrepancy", 0.0)
    rep = sanity.run(scores=[bad], checks=("sharp_blurry", "translate"), **_FAST)
    assert rep.status("mean_gap", "sharp_blurry") == "fail"
    assert rep.status("mean_gap", "translate") == "pass"  # it does see a shift


def test_a_metric_that_raises_fails_with_its_message():
    def broken(real, fake, target):
        raise ValueError("cannot score this")

    rep = sanity.run(scores=[sanity.Score("broken", broken, "broken", "discrepancy", 0.0)],
                     checks=("identical",), **_FAST)
    (cell,) = rep.results
    assert cell.status == "fail" and "cannot score this" in cell.detail


def test_run_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown check"):
        sanity.run(checks=("nope",))
    with pytest.raises(ValueError, match="unknown target"):
        sanity.run(targets=("moons",), checks=("identical",), n=50, reps=2)
    with pytest.raises(ValueError, match="n must be"):
        sanity.run(n=5)


def test_cli_check_metrics_writes_the_table(tmp_path, monkeypatch, capsys):
    from densitylab.cli import main

    calls, full = [], sanity.run

    def reduced(out=None):
        calls.append(out)
        return full(out, scores=_pick("energy_distance"), checks=("identical",), **_FAST)

    monkeypatch.setattr(sanity, "run", reduced)
    assert main(["check-metrics", "--out", str(tmp_path)]) == 0
    assert calls == [str(tmp_path)]
    assert "| energy_distance | pass |" in capsys.readouterr().out
    assert (tmp_path / "metric-checks.json").exists()
