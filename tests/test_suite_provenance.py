"""Provenance: each run record says which code computed it (version, git commit, a fingerprint
of the model, dataset and metric source); a folder of other code's runs is not resumed without
``--force``, and the report marks runs from different code."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import _suite_fakes
import pytest
import tomllib

from densitylab import models
from densitylab.cli import main
from densitylab.report import write_report
from densitylab.suite import RunStore, parse_suite, provenance, run_suite
from densitylab.suite.runners import FolderInUseError

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _suite():
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["models"] = [data["models"][0]]  # only the working model: 4 runs
    data["metrics"] = [data["metrics"][0]]
    return parse_suite(data)


def _run(out, **kwargs):
    return run_suite(_suite(), out, show_progress=False, **kwargs)


def _set_code(store: RunStore, run_id: str, code: dict | None) -> None:
    """Rewrite a record as if another version of the code (or one without provenance, when
    ``code`` is None) had written it."""
    rec = store.load(run_id)
    if code is None:
        rec.pop("code")
    else:
        rec["code"] = code
    store.write_record(rec)


def test_every_record_carries_the_code_that_computed_it(tmp_path):
    from densitylab import __version__

    cfg = _suite()
    run_suite(cfg, tmp_path, show_progress=False)
    recs = RunStore(tmp_path).current_records()
    assert len(recs) == 4
    for rec in recs:
        code = rec.code
        assert code["densitylab"] == __version__
        assert len(code["fingerprint"]) == 12 and set(code["parts"]) == {"model", "dataset",
                                                                          "metrics"}
        assert code["git_commit"] is None or len(code["git_commit"]) == 40
    # one model kind, one dataset class, one metric set: one fingerprint, the one the runner
    # expects (it checks a folder with it before running)
    assert {r.code["fingerprint"] for r in recs} == {provenance.spec_code(cfg.runs[0])[
        "fingerprint"]}


def test_the_fingerprint_covers_the_runs_source_and_nothing_else():
    vae = models.make("vae", data_dim=2)
    mods = provenance.model_modules(vae)
    assert {"densitylab.models.vae", "densitylab.models.base", "densitylab.losses"} <= set(mods)
    assert not any(m.endswith((".gan", ".flow", ".diffusion")) for m in mods)
    metric_mods = provenance.metric_modules(["mmd"])
    assert "densitylab.metrics.mmd" in metric_mods and "densitylab.suite.evaluate" in metric_mods
    assert not any(m.startswith(("densitylab.report", "densitylab.cli")) for m in metric_mods)
    gan = models.make("gan", data_dim=2)
    assert provenance.module_fingerprint(provenance.model_modules(vae)) != \
        provenance.module_fingerprint(provenance.model_modules(gan))


def test_an_edit_to_a_source_file_changes_the_fingerprint(tmp_path, monkeypatch):
    module = tmp_path / "my_plugin_model.py"
    module.write_text("def make():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = provenance.module_fingerprint(["my_plugin_model"])
    assert provenance.module_fingerprint(["my_plugin_model"]) == before  # deterministic
    module.write_text("def make():\n    return 2\n")
    # a process fingerprints the code it loaded: the edit counts in the next process
    assert provenance.module_fingerprint(["my_plugin_model"]) == before
    provenance._file_digest.cache_clear()  # as a new process
    assert provenance.module_fingerprint(["my_plugin_model"]) != before
    sys.modules.pop("my_plugin_model", None)


def test_no_git_commit_and_no_failure_outside_a_git_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_PACKAGE", tmp_path / "densitylab")
    provenance.git_state.cache_clear()
    try:
        assert provenance.git_state() == {"git_commit": None, "git_dirty": None}
    finally:
        provenance.git_state.cache_clear()


def test_a_folder_of_other_code_is_refused_and_force_keeps_it_marked(tmp_path):
    _run(tmp_path, only="ring/*")  # 2 of the 4 runs, then the code "changes"
    store = RunStore(tmp_path)
    other, unknown = sorted(store.record_ids())
    old = store.load_record(other).code
    _set_code(store, other, {**old, "fingerprint": "0123456789ab"})
    _set_code(store, unknown, None)  # written before densitylab recorded its code
    before = sorted(p.name for p in store.runs_dir.iterdir())
    with pytest.raises(FolderInUseError) as err:
        _run(tmp_path)
    text = str(err.value)
    assert "0123456789ab -> " + old["fingerprint"] in text
    assert "code not recorded" in text and "--force" in text and "--out" in text
    assert sorted(p.name for p in store.runs_dir.iterdir()) == before  # nothing computed

    result = _run(tmp_path, force=True)
    assert len(result.ok) == 2 and sorted(result.other_code) == [other, unknown]
    assert "2 finished run(s) computed by other code were kept" in result.summary()
    assert store.load_record(other).code["fingerprint"] == "0123456789ab"  # kept, not redone
    report = write_report(tmp_path, figures=False).markdown.read_text()
    assert "- code: **mixed**" in report
    section = report.split("## Runs from different code")[1]
    assert "`0123456789ab`" in section and f"`{old['fingerprint']}`" in section
    assert "| not recorded |" in section and "blob/g: seed 0, 1" in section


def test_a_finished_folder_of_other_code_is_read_not_refused(tmp_path):
    _run(tmp_path)
    store = RunStore(tmp_path)
    for rid in store.record_ids():
        _set_code(store, rid, None)
    # nothing to compute: nothing would be mixed, so resuming is no conflict
    assert len(_run(tmp_path).skipped) == 4
    report = write_report(tmp_path, figures=False).markdown.read_text()
    assert "- code: not recorded" in report and "Runs from different code" not in report


def test_cli_says_the_folder_holds_other_code(tmp_path, capsys):
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(_suite_fakes.TINY_SUITE.replace("fail = true", "fail = false"))
    out = tmp_path / "out"
    assert main(["-q", "run", str(suite_file), "--out", str(out), "--only", "ring/*"]) == 0
    store = RunStore(out)
    rid = store.record_ids()[0]
    _set_code(store, rid, {**store.load_record(rid).code, "fingerprint": "0123456789ab"})
    assert main(["-q", "run", str(suite_file), "--out", str(out)]) == 2
    assert "computed by other code" in capsys.readouterr().err
    assert main(["run", str(suite_file), "--out", str(out), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert f"{rid}  ring/" in listed and listed.count("done (by other code)") == 1
    assert main(["-q", "run", str(suite_file), "--out", str(out), "--force"]) == 0


@pytest.mark.slow
def test_the_committed_folders_without_provenance_still_report(tmp_path):
    # the earlier loop's pacgan2d records, written before runs recorded their code
    folder = DOCS / "pacgan2d" / "stale" / "20261206T205719.599268Z"
    if not (folder / "runs").is_dir():
        pytest.skip("the earlier pacgan2d records are not in this checkout")
    shutil.copytree(folder, tmp_path / "f", ignore=shutil.ignore_patterns("figures"))
    report = write_report(tmp_path / "f", figures=False).markdown.read_text()
    assert "- code: not recorded" in report
