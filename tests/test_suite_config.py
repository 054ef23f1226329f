"""Suite TOML validation (each error names its key) and run ids (stable, sensitive to settings)."""

from __future__ import annotations

import copy

import _suite_fakes  # noqa: F401  (registers the test model and metrics)
import pytest
import tomllib

from densitylab.registry import register_model, unregister
from densitylab.suite import builtin_suites, load_suite, parse_suite, run_id

BASE = tomllib.loads(_suite_fakes.TINY_SUITE)


def _with(edit):
    data = copy.deepcopy(BASE)
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda d: d["models"][1].update(kind="vea"), ValueError,
         r"models\[1\]\.kind: unknown model 'vea'; expected one of .*'gaussfit'"),
        (lambda d: d["datasets"][0].update(name="rign"), ValueError,
         r"datasets\[0\]\.name: unknown dataset 'rign'; expected one of .*'ring'"),
        (lambda d: d["metrics"][0].update(name="mdd"), ValueError,
         r"metrics\[0\]\.name: unknown metric 'mdd'"),
        (lambda d: d["models"][0].pop("name"), ValueError, r"models\[0\]\.name: missing"),
        (lambda d: d.pop("datasets"), ValueError, r"datasets: missing"),
        (lambda d: d["suite"].update(seeds="0,1"), TypeError, r"suite\.seeds: expected"),
        (lambda d: d["suite"].update(seeds=[0, 0]), ValueError, r"suite\.seeds: expected distinct"),
        (lambda d: d["suite"].update(eval_samples=2.5), TypeError,
         r"suite\.eval_samples: expected an integer, got float"),
        (lambda d: d["suite"].update(device="tpu"), ValueError, r"suite\.device: expected one of"),
        (lambda d: d["train"].update(steps=0), ValueError,
         r"train\.steps: expected an integer >= 1"),
        (lambda d: d["train"].update(stpes=10), ValueError,
         r"train\.stpes: unknown key; expected one of batch_size, eval_every, lr, lr_schedule, "
         r"steps, train_size"),
        (lambda d: d["train"].update(lr_schedule="cosin"), ValueError,
         r"train\.lr_schedule: expected one of 'constant', 'cosine', got 'cosin'"),
        (lambda d: d["models"][0].update(train={"lr_schedule": "cosine"}), ValueError,
         r"models\[0\]\.train\.lr_schedule: model kind 'gaussfit' has no learning-rate "
         r"schedule"),
        (lambda d: d["models"][0].update(kind="vae", params={"latnet": 2}), ValueError,
         r"models\[0\]\.params\.latnet: model kind 'vae' has no parameter 'latnet'; did "
         r"you mean 'latent_dim'\?"),
        (lambda d: d["models"][0].update(train={"lr": "fast"}), TypeError,
         r"models\[0\]\.train\.lr: expected a number"),
        (lambda d: d["datasets"][0].update(params={"n_mode": 3}), ValueError,
         r"datasets\[0\]\.params: .*n_mode"),
        (lambda d: d["datasets"][0].update(params={"std": -1.0}), ValueError,
         r"datasets\[0\]\.params: .*std"),
        (lambda d: d["metrics"][1].update(params={"scale": "big"}), TypeError,
         r"metrics\[1\]\.params\.scale: expected a number, got str"),
        (lambda d: d["metrics"][1].update(params={"scael": 2.0}), ValueError,
         r"metrics\[1\]\.params\.scael: unknown key; expected one of scale"),
        (lambda d: d["models"][1].update(name="g"), ValueError,
         r"models\[1\]\.name: 'g' is used twice"),
        (lambda d: d.update(extra={}), ValueError, r"^extra: unknown key"),
        (lambda d: d["suite"].update(plugins=["no_such_module_xyz"]), ValueError,
         r"suite\.plugins\[0\]: cannot import 'no_such_module_xyz'"),
    ],
)
def test_config_errors_name_the_key(edit, error, match):
    with pytest.raises(error, match=match):
        parse_suite(_with(edit))


def test_expansion_resolves_defaults_and_overrides():
    cfg = parse_suite(_with(lambda d: d["models"][0].update(train={"steps": 7})))
    assert len(cfg.runs) == 2 * 2 * 2  # datasets x models x seeds
    by_label = {r.label: r for r in cfg.runs}
    g = by_label["ring/g/1"].config
    # override, suite, default (the fake model has no default learning rate to fill in)
    assert g["train"] == {"steps": 7, "batch_size": 64, "lr": None, "lr_schedule": "constant"}
    assert by_label["ring/bad/1"].config["train"]["steps"] == 4
    assert {m["name"]: m["params"] for m in g["metrics"]} == {"mean_gap": {},
                                                               "broken": {"scale": 1.0}}
    assert g["seed"] == 1 and g["eval_samples"] == 400


def test_run_id_is_stable_and_changes_with_any_setting():
    a = parse_suite(BASE).runs
    b = parse_suite(copy.deepcopy(BASE)).runs
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == len(a)
    base_id = a[0].run_id
    for edit in (lambda d: d["train"].update(lr=2e-3),
                 lambda d: d["suite"].update(eval_samples=401),
                 lambda d: d["datasets"][0]["params"].update(std=0.06),
                 lambda d: d["metrics"][1].update(params={"scale": 2.0})):
        assert parse_suite(_with(edit)).runs[0].run_id != base_id
    # same setting written as 2 or 2.0, or the device changed: same run
    two = parse_suite(_with(lambda d: d["metrics"][1].update(params={"scale": 2})))
    two_f = parse_suite(_with(lambda d: d["metrics"][1].update(params={"scale": 2.0})))
    assert two.runs[0].run_id == two_f.runs[0].run_id
    assert parse_suite(BASE, device="cuda").runs[0].run_id == base_id
    # the id is the hash of the resolved config, independent of key order
    cfg = a[0].config
    assert run_id(dict(reversed(list(cfg.items())))) == base_id


@pytest.mark.parametrize("name", ["quick", "toy2d", "images", "ring40"])
def test_builtin_suites_validate_and_match_benchmarks_copies(name):
    from pathlib import Path

    shipped = builtin_suites()[name]
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "suites" / f"{name}.toml"
    assert shipped.read_bytes() == bench.read_bytes()
    cfg = load_suite(name)
    assert cfg.name == name and cfg.runs


def test_toy2d_follows_the_published_protocol():
    from densitylab.report.published import protocol_of

    cfg = load_suite("toy2d")
    assert cfg.eval_samples == 2500 and len(cfg.seeds) >= 5
    protocols = {protocol_of(r.config) for r in cfg.runs}
    assert protocols == {"ring", "grid"}
    assert {m["name"] for m in cfg.metrics} >= {"mode_coverage", "mmd", "kl_knn"}


# ---------------------------------------------------------------- resolved run ids

_VAE_SUITE = {
    "suite": {"name": "ids", "device": "cpu", "seeds": [0], "eval_samples": 100,
              "references": False},  # runs[0] is the VAE's run
    "datasets": [{"name": "ring"}],
    "models": [{"name": "vae", "kind": "vae"}],
    "metrics": [{"name": "mmd"}],
}


def _vae_run(**edits):
    data = copy.deepcopy(_VAE_SUITE)
    for section, value in edits.items():
        data[section][0].update(value)
    return parse_suite(data).runs[0]


def test_run_config_holds_the_defaults_the_code_fills_in():
    from densitylab import distributions, models

    run = _vae_run()
    cfg = run.config
    assert cfg["dataset"]["params"] == distributions.ring().params  # n_modes, radius, std
    vae = models.VAE(data_dim=2, seed=0)
    expected = {k: v for k, v in vae.config.items() if k not in ("data_shape", "seed")}
    assert cfg["model"]["params"] == expected
    assert cfg["train"]["lr"] == models.VAE.default_lr and cfg["train"]["lr_schedule"] == "constant"
    assert cfg["metrics"] == [{"name": "mmd", "params": {"kernel": "rbf", "bandwidth": None,
                                                         "estimator": "unbiased"}}]
    # what a worker builds from the resolved parameters is the model the suite resolved
    rebuilt = models.make("vae", data_dim=2, seed=0, **cfg["model"]["params"])
    assert rebuilt.config == vae.config


def test_writing_a_default_out_gives_the_same_run_id():
    from densitylab import distributions, models

    implicit = _vae_run()
    vae = models.VAE(data_dim=2)
    explicit = _vae_run(
        datasets={"params": distributions.ring().params},
        models={"params": {"latent_dim": vae.config["latent_dim"],
                           "hidden": vae.config["hidden"]},
                "train": {"lr": models.VAE.default_lr}},
        metrics={"params": {"kernel": "rbf"}},
    )
    assert explicit.run_id == implicit.run_id
    assert _vae_run(models={"params": {"latent_dim": 3}}).run_id != implicit.run_id
    assert _vae_run(models={"train": {"lr_schedule": "cosine"}}).run_id != implicit.run_id


def test_changing_a_default_in_code_changes_the_run_id(monkeypatch):
    from densitylab import models

    before = _vae_run()
    monkeypatch.setattr(models.VAE, "default_lr", 2 * models.VAE.default_lr)
    assert _vae_run().run_id != before.run_id  # the default learning rate
    monkeypatch.undo()

    class Wider(models.VAE):
        def __init__(self, *args, hidden=(256, 256), **kwargs):
            super().__init__(*args, hidden=hidden, **kwargs)

    register_model("vae", Wider)  # shadows the built-in kind, as models._REGISTRY did
    try:
        after = _vae_run()
    finally:
        unregister("vae")
    assert after.config["model"]["params"]["hidden"] == [256, 256]
    assert after.run_id != before.run_id  # a constructor default


def _width_runs(**register_options):
    """The first run of a suite leaving a registered model's ``width`` implicit, and of one
    writing its default (64) out."""
    from densitylab.suite import register_model, unregister

    def factory(data_dim, seed=None, width=64):
        return _suite_fakes.GaussianFit(data_dim, seed)

    register_model("widthfit", factory, **register_options)
    try:
        data = copy.deepcopy(BASE)
        data["models"] = [{"name": "w", "kind": "widthfit"}]
        implicit = parse_suite(data).runs[0]
        data["models"] = [{"name": "w", "kind": "widthfit", "params": {"width": 64}}]
        explicit = parse_suite(data).runs[0]
    finally:
        unregister("widthfit")
    return implicit, explicit


def test_registered_model_without_config_resolves_its_declared_defaults():
    implicit, explicit = _width_runs(defaults={"width": 64})
    assert implicit.config["model"]["params"] == {"width": 64}
    assert implicit.run_id == explicit.run_id


def test_registered_model_without_config_or_defaults_hashes_what_the_suite_writes():
    # nothing is read from the factory's signature: undeclared defaults are not in the id
    implicit, explicit = _width_runs()
    assert implicit.config["model"]["params"] == {}
    assert explicit.config["model"]["params"] == {"width": 64}


def test_run_id_is_sha256_of_canonical_json_and_holds_the_minor_version():
    import hashlib

    import densitylab
    from densitylab.suite.config import version_key

    text = '{"a":[1,2],"b":{"c":0.5,"d":null}}'  # sorted keys, no whitespace
    assert run_id({"b": {"d": None, "c": 0.5}, "a": [1, 2]}) == \
        hashlib.sha256(text.encode()).hexdigest()[:12]
    assert version_key() == ".".join(densitylab.__version__.split(".")[:2])
    assert parse_suite(BASE).runs[0].config["densitylab"] == version_key()


@pytest.mark.slow  # a fresh interpreter (~20 s); test_architecture pins the built-in run ids,
# computed in another process with another hash seed, in the fast run
def test_run_ids_are_the_same_in_another_process():
    import json
    import subprocess
    import sys

    code = ("import json; from densitylab.suite import load_suite; "
            "print(json.dumps([r.run_id for r in load_suite('quick').runs]))")
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert json.loads(res.stdout) == [r.run_id for r in load_suite("quick").runs]
