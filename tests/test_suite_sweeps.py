"""Sweeps: a ``[[models]]`` entry's ``sweep`` table becomes one model per setting (labelled by
it) before run ids are made, validated like the rest, run, resumed and reported as models."""

from __future__ import annotations

import copy
from pathlib import Path

import _suite_fakes
import pandas as pd
import pytest
import tomllib

from densitylab.report import write_report
from densitylab.suite import RunStore, parse_suite, run_suite
from densitylab.suite.config import SuiteConfigError
from densitylab.suite.runners import select_runs

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "suites" / "quick.toml"


def _tiny(sweep=None, **model):
    data = tomllib.loads(_suite_fakes.TINY_SUITE)
    data["models"] = [{"name": "g", "kind": "gaussfit", **model}]
    if sweep is not None:
        data["models"][0]["sweep"] = sweep
    data["metrics"] = [data["metrics"][0]]
    return data


def _errors(data) -> list[str]:
    with pytest.raises(SuiteConfigError) as err:
        parse_suite(data)
    return err.value.errors


def test_a_sweep_expands_into_one_labelled_model_per_setting():
    cfg = parse_suite(_tiny({"train": {"steps": [2, 4], "batch_size": [32, 64]}}))
    labels = [m["label"] for m in cfg.models]
    assert labels == ["g[steps=2,batch_size=32]", "g[steps=2,batch_size=64]",
                      "g[steps=4,batch_size=32]", "g[steps=4,batch_size=64]"]
    assert [(m["train"]["steps"], m["train"]["batch_size"]) for m in cfg.models] == \
        [(2, 32), (2, 64), (4, 32), (4, 64)]
    assert len(cfg.runs) == 4 * 2 * 2  # settings x datasets x seeds
    assert len(set(cfg.run_ids())) == len(cfg.runs)
    run = next(r for r in cfg.runs if r.model == "g[steps=4,batch_size=32]")
    assert run.config["train"]["steps"] == 4 and run.config["model"]["label"] == run.model


def test_a_list_valued_parameter_is_a_value_not_a_sweep():
    data = tomllib.loads(QUICK.read_text())
    cfg = parse_suite(data)
    vae = next(m for m in cfg.models if m["label"] == "vae")
    assert vae["params"]["hidden"] == [128, 128]
    assert [m["label"] for m in cfg.models] == ["oracle", "noise", "vae", "gan"]
    # sweeping over arrays takes an array of arrays
    data["models"][0]["params"].pop("hidden")
    data["models"][0]["sweep"] = {"params": {"hidden": [[16], [32, 32]]}}
    labels = [m["label"] for m in parse_suite(data).models]
    assert labels[2:4] == ["vae[hidden=[16]]", "vae[hidden=[32,32]]"]


def test_a_setting_equal_to_a_written_model_has_the_same_id_under_the_same_label():
    swept = parse_suite(_tiny({"train": {"steps": [4]}}))
    assert swept.models[0]["label"] == "g[steps=4]"
    plain = parse_suite(_tiny(name="g[steps=4]", train={"steps": 4}))
    assert swept.run_ids() == plain.run_ids()


def test_bad_sweeps_fail_at_load_with_their_location():
    errors = _errors(_tiny({"train": {"lr": [1e-3, -1.0], "stpes": [1]}, "param": {},
                           "params": {"fail": 3}}))
    assert "models[0].sweep.train.lr[1]: expected a number > 0, got -1.0" in errors
    assert any(e.startswith("models[0].sweep.train.stpes: unknown key; expected one of")
               for e in errors)
    assert any(e.startswith("models[0].sweep.param: unknown key; expected params or train")
               for e in errors)
    assert any(e.startswith("models[0].sweep.params.fail: expected a non-empty array")
               for e in errors)
    errors = _errors(_tiny({"train": {"steps": [2, 2]}}))
    assert errors == ["models[0].sweep.train.steps: expected distinct values, got [2, 2]"]
    errors = _errors(_tiny({"train": {"steps": [2, 3]}}, train={"steps": 5}))
    assert errors[0].startswith("models[0].sweep.train.steps: also written in models[0].train")
    assert _errors(_tiny({}))[0].startswith("models[0].sweep: expected at least one key")


def test_a_bad_parameter_value_in_a_sweep_names_its_setting():
    data = tomllib.loads(QUICK.read_text())
    data["models"][0]["params"].pop("latent_dim")
    data["models"][0]["sweep"] = {"params": {"latent_dim": [2, -1]}}
    errors = _errors(data)
    assert len(errors) == 1
    assert errors[0].startswith("models[0] (sweep latent_dim=-1).params (on dataset 'ring'): ")
    assert "latent_dim" in errors[0]


def test_only_matches_a_swept_label_literally():
    cfg = parse_suite(_tiny({"train": {"steps": [2, 4]}}))
    picked = select_runs(cfg.runs, "ring/g[steps=4]/*")
    assert [r.label for r in picked] == ["ring/g[steps=4]/0", "ring/g[steps=4]/1"]
    assert len(select_runs(cfg.runs, "*/g*/0")) == 4


def test_a_swept_suite_runs_resumes_and_reports_each_setting(tmp_path):
    data = _tiny({"train": {"steps": [2, 4]}})
    first = run_suite(parse_suite(copy.deepcopy(data)), tmp_path, show_progress=False)
    assert len(first.ok) == 8
    again = run_suite(parse_suite(copy.deepcopy(data)), tmp_path, show_progress=False)
    assert again.finished == [] and len(again.skipped) == 8
    df = pd.read_csv(write_report(tmp_path, figures=False).csv)
    assert sorted(df["model"].unique()) == ["g[steps=2]", "g[steps=4]"]
    assert sorted(df.groupby("model")["steps"].first()) == [2, 4]


@pytest.mark.slow
def test_a_two_setting_sweep_of_the_quick_suite_runs_resumes_and_reports_two_models(tmp_path):
    data = tomllib.loads(QUICK.read_text())
    data["models"] = [data["models"][0]]  # the VAE, swept over its latent dimension
    data["models"][0]["params"].pop("latent_dim")
    data["models"][0]["sweep"] = {"params": {"latent_dim": [2, 8]}}
    data["train"].update(steps=20, batch_size=64)  # tiny: this checks the machinery
    data["suite"].update(seeds=[0, 1], eval_samples=300)
    for m in data["metrics"]:
        if m["name"] == "log_likelihood":
            m["params"] = {"num_samples": 50}
    first = run_suite(parse_suite(copy.deepcopy(data)), tmp_path, show_progress=False)
    assert first.failed == [] and len(first.ok) == 8  # 2 settings + 2 references, 2 seeds
    again = run_suite(parse_suite(copy.deepcopy(data)), tmp_path, show_progress=False)
    assert again.finished == [] and len(again.skipped) == 8  # nothing computed again
    paths = write_report(tmp_path, figures=False)
    df = pd.read_csv(paths.csv)
    models = sorted(set(df.loc[~df["reference"].astype(bool), "model"]))
    assert models == ["vae[latent_dim=2]", "vae[latent_dim=8]"]
    latent = {r.model: r.model_config["params"]["latent_dim"]
              for r in RunStore(tmp_path).current_records() if r.model_kind == "vae"}
    assert latent["vae[latent_dim=2]"] == 2 and latent["vae[latent_dim=8]"] == 8
    text = paths.markdown.read_text()
    assert "vae[latent_dim=2]" in text and "vae[latent_dim=8]" in text


def test_the_user_guides_sweep_example_is_valid():
    guide = (Path(__file__).resolve().parent.parent / "docs" / "user-guide.md").read_text()
    section = guide.split("### Sweeps", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(example)  # the models only; kind is left to the name
    data.update(datasets=[{"name": "ring"}], metrics=[{"name": "mmd"}],
                suite={"references": False})
    labels = [m["label"] for m in parse_suite(data).models]
    assert labels == ["vae[latent_dim=2,lr=0.001]", "vae[latent_dim=2,lr=0.0001]",
                      "vae[latent_dim=8,lr=0.001]", "vae[latent_dim=8,lr=0.0001]",
                      "gan[hidden=[64,64]]", "gan[hidden=[128,128]]"]
    assert {m["kind"] for m in parse_suite(data).models} == {"vae", "gan"}
