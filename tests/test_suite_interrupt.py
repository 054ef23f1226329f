"""Ctrl-C: one line with the finished count and the exact command that resumes, exit status 130;
with worker processes no new run starts after the interrupt, runs in flight are cancelled, and
every record written is reported. The suite runs in a subprocess that receives SIGINT on its
whole process group, as a terminal's Ctrl-C does. SIGTERM to the suite's process alone (`kill
PID`) is handled the same way and stops its worker processes too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from densitylab.suite import RunStore

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SUITE = """
[suite]
name = "ctrlc"
device = "cpu"
seeds = [0, 1, 2, 3, 4, 5]
eval_samples = 200
density_grid = 0
references = false
plugins = ["_suite_fakes"]

[train]
steps = 2
batch_size = 16

[[datasets]]
name = "ring"
params = {{ n_modes = 4, radius = 1.0, std = 0.05 }}

[[models]]
name = "m"
kind = "markedfit"
params = {{ marks = "{marks}", sleep = {sleep} }}

[[metrics]]
name = "mean_gap"
"""


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_after_first_record(tmp_path, extra, sleep, kill=None):
    marks = tmp_path / "marks"
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.format(marks=marks, sleep=sleep))
    out = tmp_path / "out"
    argv = ["run", str(suite), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "OMP_NUM_THREADS": "1"}
    # Ctrl-C's default action in the child, whatever the test runner inherited: a shell's
    # background job (``cmd &`` without job control) ignores SIGINT, and so would the suite
    proc = subprocess.Popen([sys.executable, "-m", "densitylab", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    runs = out / "runs"
    while time.monotonic() < deadline and not list(runs.glob("[!.]*.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "the suite ended before it could be interrupted"
    if kill is None:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        kill(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the suite did not stop after Ctrl-C") from None
    return proc.returncode, stdout, stderr, out, marks, argv


def _check_common(rc, stderr, out, argv, expected_rc=130):
    assert rc == expected_rc, stderr
    assert "Traceback" not in stderr
    line = [ln for ln in stderr.splitlines() if ln.startswith("interrupted:")]
    assert len(line) == 1, stderr
    records = RunStore(out).records()
    done = re.search(r"interrupted: (\d+) of 6 run\(s\) finished \((\d+) record", line[0])
    assert done and int(done.group(1)) == len(records) == int(done.group(2))
    assert line[0].endswith("resume with: densitylab " + " ".join(argv))
    for rec in records:  # every record written is reported
        assert f"ring/m/{rec['seed']} {rec['run_id']} ok" in stderr
    return records


def test_ctrl_c_in_a_sequential_run_prints_one_line_and_exits_130(tmp_path):
    rc, _, stderr, out, marks, argv = _interrupt_after_first_record(tmp_path, [], sleep=0.5)
    records = _check_common(rc, stderr, out, argv)
    assert 1 <= len(records) < 6


@pytest.mark.slow
def test_ctrl_c_with_workers_starts_nothing_new_and_reports_every_record(tmp_path):
    rc, _, stderr, out, marks, argv = _interrupt_after_first_record(
        tmp_path, ["--workers", "2"], sleep=1.5)
    records = _check_common(rc, stderr, out, argv)
    assert 1 <= len(records) < 6
    started = len(list(marks.iterdir()))
    # at most the two runs in flight were started beyond those that finished, and they were
    # cancelled: no record appears for them later, and nothing else starts
    assert started <= len(records) + 2
    time.sleep(2.0)
    assert len(list(marks.iterdir())) == started
    assert len(RunStore(out).records()) == len(records)


@pytest.mark.slow
def test_sigterm_to_the_suite_process_stops_its_workers_too(tmp_path):
    group = []

    def terminate(pid):  # `kill PID` reaches the suite's process only, not its workers
        group.append(pid)  # the suite runs in a session of its own: its group id is its pid
        os.kill(pid, signal.SIGTERM)

    rc, _, stderr, out, marks, argv = _interrupt_after_first_record(
        tmp_path, ["--workers", "2"], sleep=1.5, kill=terminate)
    records = _check_common(rc, stderr, out, argv, expected_rc=143)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # every worker of the suite's process group is gone
        try:
            os.killpg(group[0], 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(group[0], signal.SIGKILL)
        raise AssertionError("worker processes outlived the suite after SIGTERM")
    started = len(list(marks.iterdir()))
    time.sleep(2.0)
    assert len(list(marks.iterdir())) == started
    assert len(RunStore(out).records()) == len(records)
