"""A results folder belongs to one suite configuration: another one is refused (with the keys
that differ and the two ways out), ``--force`` moves stale records aside without deleting them,
and the report averages only the current suite's runs."""

from __future__ import annotations

import json
import re
import shutil

import _suite_fakes
import pandas as pd
import pytest
import tomllib

from densitylab.cli import main
from densitylab.report import write_report
from densitylab.suite import RunStore, parse_suite, run_suite
from densitylab.suite.runners import FolderInUseError


def _suite(steps=4, name="tiny"):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["suite"]["name"] = name
    data["train"]["steps"] = steps
    data["models"] = [data["models"][0]]  # only the working model: 4 runs
    data["metrics"] = [data["metrics"][0]]
    return data


def _run(data, out, **kwargs):
    return run_suite(parse_suite(data), out, show_progress=False, **kwargs)


def test_a_changed_config_is_refused_naming_the_keys_and_the_ways_out(tmp_path):
    _run(_suite(steps=4), tmp_path)
    store = RunStore(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in store.runs_dir.iterdir()}
    with pytest.raises(FolderInUseError) as err:
        _run(_suite(steps=2), tmp_path)
    text = str(err.value)
    assert "train.steps (4 -> 2)" in text
    assert "--out" in text and "--force" in text and "nothing is deleted" in text
    assert {p.name: p.stat().st_mtime_ns for p in store.runs_dir.iterdir()} == before
    with pytest.raises(FolderInUseError, match=r"name \('tiny' -> 'other'\)"):
        _run(_suite(name="other"), tmp_path)
    # the same suite again is a resume, not a conflict
    assert len(_run(_suite(steps=4), tmp_path).skipped) == 4


def test_force_moves_stale_records_aside_and_the_report_never_mixes(tmp_path):
    _run(_suite(steps=4), tmp_path)
    old_ids = set(RunStore(tmp_path).record_ids())
    result = _run(_suite(steps=2), tmp_path, force=True)
    assert len(result.ok) == 4
    moved = {p.stem for p in result.moved_to.glob("runs/*.json")}
    assert moved == old_ids  # moved, not deleted
    assert json.loads((result.moved_to / "suite.json").read_text())["name"] == "tiny"
    store = RunStore(tmp_path)
    assert set(store.record_ids()).isdisjoint(old_ids)
    df = pd.read_csv(write_report(tmp_path, figures=False).csv)
    assert set(df["steps"]) == {2} and len(df) == 4


def test_stale_records_are_listed_and_never_averaged(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _run(_suite(steps=4), first)
    _run(_suite(steps=2), second)
    # a record of another configuration lands in the folder (copied by hand, or written by a
    # version of densitylab that did not check)
    stale = RunStore(first).records()[0]
    shutil.copy(RunStore(first).record_path(stale["run_id"]), second / "runs")
    paths = write_report(second, figures=False)
    df = pd.read_csv(paths.csv)
    assert stale["run_id"] not in set(df["run_id"]) and len(df) == 4
    text = paths.markdown.read_text()
    assert "## Stale records (another configuration)" in text and stale["run_id"] in text
    # 2 values per cell (the 2 seeds of this suite), not 3
    assert re.search(r"\| mean_gap \| g \| [^|]+ \| [^|]+ \| [^|]+ \| 2 \| 0 \|", text)
    # and running into it again is refused until the stale record is moved aside
    with pytest.raises(FolderInUseError, match="1 of its records"):
        _run(_suite(steps=2), second)


def test_cli_refuses_a_used_folder_and_says_how_to_proceed(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(_suite_fakes.TINY_SUITE.replace("steps = 4", "steps = 3"))
    other = tmp_path / "o.toml"
    other.write_text(_suite_fakes.TINY_SUITE)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--only", "*/g/*", "-q"]) == 0
    capsys.readouterr()
    assert main(["run", str(other), "--out", str(out), "--only", "*/g/*"]) == 2
    err = capsys.readouterr().err
    assert "train.steps (3 -> 4)" in err and "--force" in err and "--out NEW_DIR" in err
    assert main(["run", str(other), "--out", str(out), "--only", "*/g/*", "--force", "-q"]) == 0
    assert len(list((out / "stale").glob("*/runs/*.json"))) == 4
