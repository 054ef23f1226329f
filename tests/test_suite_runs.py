"""Running suites: records on disk, resume after a crash, failed runs retried, runners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _suite_fakes
import numpy as np
import pytest
import tomllib
import torch
from scipy.integrate import trapezoid

from densitylab import distributions
from densitylab.suite import RunStore, parse_suite, run_suite

TESTS = Path(__file__).resolve().parent


def _tiny(**suite_overrides):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["suite"].update(suite_overrides)
    return data


def _run(data, out, **kwargs):
    return run_suite(parse_suite(data), out, show_progress=False, **kwargs)


def test_tiny_suite_records_results_errors_and_samples(tmp_path):
    result = _run(_tiny(density_grid=40), tmp_path)
    assert len(result.ok) == 4 and len(result.failed) == 4 and result.total == 8
    store = RunStore(tmp_path)
    records = {f"{r['dataset']}/{r['model']}/{r['seed']}": r for r in store.records()}
    assert len(records) == 8
    bad = records["ring/bad/0"]
    assert bad["status"] == "failed" and "fake model asked to fail" in bad["error"]
    good = records["blob/g/0"]
    assert good["status"] == "ok" and good["device"] == "cpu" and good["wall_s"] > 0
    # one failing metric is recorded as such; the other metric still counts
    assert "ArithmeticError" in good["metrics"]["broken"]["error"]
    gap = good["metrics"]["mean_gap"]["values"]["mean_gap"]
    # blob is one Gaussian (std 0.3): a fitted Gaussian's mean lands within a few standard
    # errors of the target mean, 0.3 * sqrt(1/400 + 1/256) ~ 0.024 per axis
    assert 0 <= gap < 0.1
    assert good["history"]["final"]["loss"] == pytest.approx(np.mean([-3.0]))
    arrays = store.load_samples(good["run_id"])
    assert arrays["samples"].shape == arrays["reference"].shape == (400, 2)
    assert good["samples_file"] == f"{good['run_id']}.samples.npz"
    # the saved reference is the sample the metrics compared against: rescoring agrees
    assert np.linalg.norm(arrays["samples"].astype(np.float64).mean(0)
                          - arrays["reference"].astype(np.float64).mean(0)) == pytest.approx(gap)
    blob = distributions.ring(n_modes=1, radius=1.0, std=0.3)  # the target's modes, saved
    np.testing.assert_array_equal(arrays["mode_means"], blob.means.double().numpy())
    np.testing.assert_array_equal(arrays["mode_stds"], blob.stds.double().numpy())
    # the stored log-density grid is a density: it integrates to ~1 over the sampled region
    dens = np.exp(arrays["grid_logp"])
    mass = trapezoid(trapezoid(dens, arrays["grid_x"], axis=1), arrays["grid_y"])
    assert mass == pytest.approx(1.0, abs=0.03)


def test_same_seed_gives_same_numbers(tmp_path):
    data = _tiny()
    data["models"] = data["models"][:1]
    _run(data, tmp_path / "a")
    _run(data, tmp_path / "b")
    a = {r["run_id"]: r["metrics"] for r in RunStore(tmp_path / "a").records()}
    b = {r["run_id"]: r["metrics"] for r in RunStore(tmp_path / "b").records()}
    assert a == b


def test_rerun_skips_finished_runs_and_retries_failed_ones(tmp_path):
    data = _tiny()
    _run(data, tmp_path)
    store = RunStore(tmp_path)
    ok = {r["run_id"]: store.record_path(r["run_id"]).stat().st_mtime_ns
          for r in store.records() if r["status"] == "ok"}
    before = _suite_fakes.CALLS["fit"]
    result = _run(data, tmp_path)
    assert _suite_fakes.CALLS["fit"] - before == 4  # only the 4 failed runs trained again
    assert sorted(result.skipped) == sorted(ok) and len(result.failed) == 4
    assert {rid: store.record_path(rid).stat().st_mtime_ns for rid in ok} == ok
    # fix the failing model: a changed configuration, so the folder is refused until --force
    # moves the 4 stale failed records aside; the rest is not recomputed
    data["models"][1]["params"] = {"fail": False}
    with pytest.raises(ValueError, match=r"models\.bad\.params\.fail \(True -> False\)"):
        _run(data, tmp_path)
    result = _run(data, tmp_path, force=True)
    assert len(result.ok) == 4 and len(result.skipped) == 4
    assert len(list(result.moved_to.glob("runs/*.json"))) == 4


def test_crash_mid_suite_then_resume(tmp_path):
    data = _tiny()
    data["models"] = [{"name": "c", "kind": "crashfit"}]
    _suite_fakes.CALLS["fit"] = 0
    assert _run(data, tmp_path).interrupted
    store = RunStore(tmp_path)
    done = {r["run_id"]: store.record_path(r["run_id"]).stat().st_mtime_ns
            for r in store.records()}
    assert len(done) == 2 and all(r["status"] == "ok" for r in store.records())
    # what a writer killed mid-write leaves: hidden temp files, one of them half a JSON
    (store.runs_dir / ".deadbeef0000.json.x1.tmp").write_text('{"run_id": "deadbe')
    (store.runs_dir / ".deadbeef0000.samples.npz.x2.tmp").write_bytes(b"PK\x03")
    assert len(store.records()) == 2
    _suite_fakes.CALLS["fit"] = 10  # past the crash
    result = _run(data, tmp_path)
    assert len(result.skipped) == 2 and len(result.ok) == 2
    assert _suite_fakes.CALLS["fit"] == 12
    assert {rid: store.record_path(rid).stat().st_mtime_ns for rid in done} == done


def test_only_pattern_selects_runs(tmp_path):
    result = _run(_tiny(), tmp_path, only="blob/g/*")
    assert result.total == 2 and len(result.ok) == 2
    rid = result.ok[0]["run_id"]
    assert _run(_tiny(), tmp_path / "x", only=rid).total == 1
    with pytest.raises(ValueError, match="only: pattern 'nothing' matches no run"):
        _run(_tiny(), tmp_path, only="nothing")


def test_kill_9_loses_no_finished_run(tmp_path):
    script = (
        "import tomllib, _suite_fakes as f\n"
        "from densitylab.suite import parse_suite, run_suite\n"
        "d = tomllib.loads(f.TINY_SUITE)\n"
        "d['models'] = [{'name': 's', 'kind': 'slowfit'}]\n"
        f"run_suite(parse_suite(d), {str(tmp_path)!r}, show_progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(runs.glob("[!.]*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = RunStore(tmp_path)
    survivors = store.records()
    assert 2 <= len(survivors) < 4, "the suite should have been killed mid-way"
    for r in survivors:  # every record on disk is complete and its samples readable
        assert r["status"] == "ok" and store.load_samples(r["run_id"]) is not None
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["models"] = [{"name": "s", "kind": "slowfit"}]  # the same command, run again
    result = _run(data, tmp_path)
    assert len(result.skipped) == len(survivors) and len(result.ok) == 4 - len(survivors)


def test_dask_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    data = _tiny()
    data["models"] = data["models"][:1]
    result = _run(data, tmp_path, dask="local", workers=1)
    assert len(result.ok) == 4 and not result.failed
    seq = tmp_path / "seq"
    _run(data, seq)
    dask_metrics = {r["run_id"]: r["metrics"] for r in RunStore(tmp_path).records()}
    seq_metrics = {r["run_id"]: r["metrics"] for r in RunStore(seq).records()}
    assert dask_metrics == seq_metrics


def test_dask_joins_an_existing_scheduler(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    data = _tiny()
    data["models"] = data["models"][:1]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        result = _run(data, tmp_path, dask=cluster.scheduler_address, only="ring/*")
    assert len(result.ok) == 2 and not result.failed
    assert {r["run_id"] for r in RunStore(tmp_path).records()} == {r["run_id"]
                                                                   for r in result.ok}


def test_process_workers_use_plugins(tmp_path):
    data = _tiny(plugins=["_suite_fakes"])
    data["models"] = data["models"][:1]
    data["datasets"] = data["datasets"][:1]
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env_path) if p)
    try:
        result = _run(data, tmp_path, workers=2)
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert len(result.ok) == 2, result.summary()
    seq = tmp_path / "seq"
    _run(data, seq)
    assert ({r["run_id"]: r["metrics"] for r in RunStore(tmp_path).records()}
            == {r["run_id"]: r["metrics"] for r in RunStore(seq).records()})


def test_records_are_plain_json(tmp_path):
    _run(_tiny(threads=1), tmp_path, only="ring/g/0")
    (path,) = (tmp_path / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["threads"] == 1  # how it ran is recorded, but is not part of the run id
    assert rec["run_id"] == next(r.run_id for r in parse_suite(_tiny()).runs
                                 if r.label == "ring/g/0")
    assert rec["run_id"] == path.stem and rec["versions"]["torch"] == torch.__version__
    assert rec["config"]["train"]["steps"] == 4


REAL_SUITE = """
[suite]
name = "real"
device = "cpu"
seeds = [0]
eval_samples = 300
density_grid = 12
references = false

[train]
steps = 10
batch_size = 64

[[datasets]]
name = "ring"

[[models]]
name = "vae"
params = { hidden = [16] }

[[models]]
name = "gan"
params = { hidden = [16] }

[[metrics]]
name = "mode_coverage"

[[metrics]]
name = "mmd"

[[metrics]]
name = "kl_knn"

[[metrics]]
name = "log_likelihood"
"""


def test_real_models_and_metrics_are_wired(tmp_path):
    from densitylab import distributions, metrics
    from densitylab.suite.evaluate import derive_seed

    result = _run(tomllib.loads(REAL_SUITE), tmp_path)
    assert len(result.ok) == 2, result.summary()
    store = RunStore(tmp_path)
    recs = {r["model"]: r for r in store.records()}
    ring = distributions.ring()
    reference = ring.sample(300, seed=derive_seed(0, "reference"))
    for rec in recs.values():
        m = rec["metrics"]
        samples = store.load_samples(rec["run_id"])["samples"]
        # the stored samples are the ones scored: rescoring them gives the recorded values
        mc = metrics.mode_coverage(samples, ring)
        cov = m["mode_coverage"]["values"]
        assert cov["modes_covered"] == mc.modes_covered and cov["num_modes"] == 8
        assert cov["high_quality_fraction"] == pytest.approx(mc.high_quality_fraction)
        assert sum(m["mode_coverage"]["details"]["counts"]) == round(
            cov["high_quality_fraction"] * 300)
        assert m["mmd"]["values"]["mmd"] == pytest.approx(metrics.mmd(samples, reference))
        assert set(m["kl_knn"]["values"]) == {"kl_knn_model_target", "kl_knn_target_model"}
        assert rec["history"]["steps"] == 10
    assert "no tractable density" in recs["gan"]["metrics"]["log_likelihood"]["skipped"]
    ll = recs["vae"]["metrics"]["log_likelihood"]["values"]
    # Gibbs: E_p[log q] <= E_p[log p]; an untrained VAE (and its IWAE bound) is far below
    assert ll["heldout_loglik"] < ll["target_loglik"]
    assert "grid_logp" in store.load_samples(recs["vae"]["run_id"])
