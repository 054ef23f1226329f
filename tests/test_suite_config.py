"""Suite TOML validation (each error names its key) and run ids (stable, sensitive to settings)."""

from __future__ import annotations

import copy

import _suite_fakes  # noqa: F401  (registers the test model and metrics)
import pytest
import tomllib

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
         r"train\.stpes: unknown key; expected one of batch_size, lr, steps"),
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
    assert g["train"] == {"steps": 7, "batch_size": 64, "lr": None}  # override, suite, default
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


@pytest.mark.parametrize("name", ["quick", "toy2d"])
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
