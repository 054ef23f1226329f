"""The densitylab command, called through main([...])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _suite_fakes
import pandas as pd
import pytest
import torch

from densitylab import __version__
from densitylab.cli import main
from densitylab.suite.config import builtin_suites


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"densitylab {__version__}"


def test_list_shows_datasets_models_metrics(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ring" in out and "grid" in out and "gaussfit" in out
    assert "mode_coverage(threshold=3.0, min_count=1)" in out
    assert "suites:   " + ", ".join(sorted(builtin_suites())) in out


def test_run_help_names_every_builtin_suite(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert f"built-in suite name ({', '.join(sorted(builtin_suites()))})" in printed


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["describe"], ["check-metrics"],
                                     ["plan"], ["load"], ["compare"], ["list"]])
def test_every_help_text_prints(command, capsys):
    # argparse formats help strings with %: a literal "80 % power" once broke `densitylab --help`
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: densitylab" in capsys.readouterr().out


def test_run_then_report(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(_suite_fakes.TINY_SUITE)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--only", "*/g/*"]) == 0
    text = capsys.readouterr().out
    assert "4 run(s) selected: 0 already done, 4 finished, 0 failed" in text
    assert main(["run", str(suite), "--out", str(out), "--only", "*/g/*", "--report"]) == 0
    text = capsys.readouterr().out
    assert "4 already done, 0 finished" in text and "report.md" in text
    assert main(["report", str(out), "--no-figures"]) == 0
    df = pd.read_csv(out / "results.csv")
    # 4 values, and the always-failing metric as 4 rows with a reason and no value
    assert len(df[df["status"] == "ok"]) == 4 and len(df[df["status"] == "error"]) == 4
    assert (out / "report.md").is_file()
    # failed runs give exit status 1
    assert main(["run", str(suite), "--out", str(out), "--only", "ring/bad/0"]) == 1


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    suite = tmp_path / "bad.toml"
    suite.write_text(_suite_fakes.TINY_SUITE.replace('kind = "gaussfit"\n\n[[models]]',
                                                     'kind = "vea"\n\n[[models]]'))
    assert main(["run", str(suite), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "models[0].kind: unknown model 'vea'; expected one of" in err
    assert main(["run", "no_such_suite", "--out", str(tmp_path / "o")]) == 2
    listed = ", ".join(repr(name) for name in sorted(builtin_suites()))
    assert f"built-in suites: {listed}" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2


def test_main_module_runs_the_cli(monkeypatch, capsys):
    # what `python -m densitylab` executes, in this interpreter (the subprocess twin is slow)
    import runpy

    monkeypatch.setattr(sys, "argv", ["densitylab", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("densitylab", run_name="__main__")
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out.strip() == f"densitylab {__version__}"


@pytest.mark.slow  # a fresh interpreter; test_main_module_runs_the_cli covers __main__ fast
def test_python_dash_m():
    res = subprocess.run([sys.executable, "-m", "densitylab", "--version"], capture_output=True,
                         text=True, cwd=Path(__file__).parent, check=False)
    assert res.returncode == 0 and res.stdout.strip() == f"densitylab {__version__}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_before_running(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(_suite_fakes.TINY_SUITE)
    assert main(["run", str(suite), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs").exists()


# ---------------------------------------------------------------- small inconsistencies


def test_compare_accepts_quiet_and_verbose_like_every_subcommand():
    from densitylab.cli import build_parser

    parser = build_parser()
    for command in (["compare", "d", "--metric", "m", "a", "b"], ["report", "d"],
                    ["describe", "x"], ["check-metrics"], ["run", "x"]):
        assert parser.parse_args([*command, "-q"]).verbosity == -1, command
        assert parser.parse_args([*command, "-v"]).verbosity == 1, command


def test_describe_knows_every_name_that_list_prints(capsys):
    assert main(["describe", "quick"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("suite quick (built-in")
    assert "datasets:" in text and "models:" in text and "metrics:" in text
    assert "densitylab run quick" in text


def test_list_verbose_has_plain_text_and_the_choices(capsys):
    assert main(["list", "--verbose"]) == 0
    text = capsys.readouterr().out
    assert ":func:" not in text and ":math:" not in text and ":class:" not in text
    assert "``" not in text
    assert "p(x) = \\sum_k w_k" in text  # the formula stays, without its markup
    lines = text.splitlines()
    vae = lines.index("model vae (hyperparameters for 2D data)")
    block = "\n".join(lines[vae:vae + 20])
    assert "likelihood = 'gaussian'  (one of 'gaussian', 'bernoulli')" in block
    assert "estimator = 'biased'  (one of " in text  # a metric's choices too
    assert "kernel = 'rbf'  (one of 'rbf', " in text and "estimator = 'unbiased'  (one of" in text


def test_a_bad_mmd_kernel_fails_when_the_suite_loads(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(_suite_fakes.TINY_SUITE.replace('name = "broken"',
                                                     'name = "mmd"\nparams = { kernel = "rfb" }'))
    assert main(["run", str(suite), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "kernel 'rfb'; expected one of 'rbf'" in capsys.readouterr().err
