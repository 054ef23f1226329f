"""The generic checker (densitylab._checking) and the suite's declared schema
(densitylab.suite.schema): key paths, expected types, ranges, choices, unknown keys, all errors
of a document at once, and each default defined once."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _suite_fakes  # noqa: F401  (registers the test model and metrics)
import pytest
import tomllib

from densitylab._checking import (
    Errors,
    Field,
    check,
    check_fields,
    check_value,
    defaults,
    describe,
    option,
    required,
)
from densitylab._runtime import LR_SCHEDULES
from densitylab.suite import parse_suite
from densitylab.suite.config import TRAIN_DEFAULTS as CONFIG_TRAIN_DEFAULTS
from densitylab.suite.config import SuiteConfig, SuiteConfigError
from densitylab.suite.schema import (
    TRAIN_DEFAULTS,
    SuiteSection,
    TrainSection,
    metric_params,
    reference_markdown,
)

BASE = tomllib.loads(_suite_fakes.TINY_SUITE)


def _even(value: int) -> int:
    if value % 2:
        raise ValueError(f"expected an even number, got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class Inner:
    rate: float = option(0.1, above=0)
    mode: str = option("a", choices=("a", "b"))


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = required(min_length=1)
    count: int = option(1, minimum=1)
    flag: bool = option(False)
    pair: int = option(2, check=_even)
    kind: str = option(None, choices=lambda: ("x", "y"), noun="kind")
    limit: int | None = option(None, minimum=0)
    tags: list[str] = option(())
    inner: Inner = option(None)
    items: list[Inner] = option((), min_items=1)
    extra: dict[str, Any] = option(None)


def _check(table, declaration=Outer, path="doc"):
    errors = Errors()
    out = check(table, declaration, path, errors)
    return out, errors.messages


def test_a_valid_table_comes_back_converted_without_defaults():
    out, errors = _check({"name": "n", "inner": {"rate": 2}, "items": [{}], "tags": ["t"],
                          "limit": None, "extra": {"free": [1, "x"]}})
    assert errors == []
    # only the written keys; an integer written for a float key becomes a float
    assert out == {"name": "n", "limit": None, "tags": ["t"], "inner": {"rate": 2.0},
                   "items": [{}], "extra": {"free": [1, "x"]}}
    assert isinstance(out["inner"]["rate"], float)
    assert defaults(Inner) == {"rate": 0.1, "mode": "a"}
    assert "name" not in defaults(Outer)  # required: no default


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"count": "3"}, "doc.count: expected an integer, got str '3'"),
        ({"count": True}, "doc.count: expected an integer, got bool True"),  # no bool as int
        ({"count": 2.0}, "doc.count: expected an integer, got float 2.0"),
        ({"flag": 1}, "doc.flag: expected a boolean, got int 1"),
        ({"tags": "t"}, "doc.tags: expected an array of strings, got str 't'"),
        ({"tags": ["a", 3]}, "doc.tags[1]: expected a string, got int 3"),
        ({"inner": 5}, "doc.inner: expected a table, got int 5"),
        ({"limit": "x"}, "doc.limit: expected an integer, got str 'x'"),
        ({"extra": []}, "doc.extra: expected a table, got list []"),
    ],
)
def test_wrong_type_names_the_key_what_was_expected_and_what_was_given(table, message):
    out, errors = _check({"name": "n", "items": [{}], **table})
    assert errors == [message]
    assert list(table)[0] not in out  # a wrong value is not returned


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"count": 0}, "doc.count: expected an integer >= 1, got 0"),
        ({"limit": -1}, "doc.limit: expected an integer >= 0, got -1"),
        ({"inner": {"rate": 0}}, "doc.inner.rate: expected a number > 0, got 0.0"),
        ({"inner": {"rate": float("inf")}}, "doc.inner.rate: expected a finite number, got inf"),
        ({"name": ""}, "doc.name: expected a non-empty string, got ''"),
        ({"items": []}, "doc.items: expected a non-empty array of tables, got 0 item(s)"),
        ({"pair": 3}, "doc.pair: expected an even number, got 3"),  # a check function
    ],
)
def test_out_of_range(table, message):
    _, errors = _check({"name": "n", "items": [{}], **table})
    assert errors == [message]


def test_unknown_key_lists_the_allowed_keys():
    _, errors = _check({"name": "n", "items": [{}], "cuont": 2, "inner": {"mod": "a"}})
    assert errors == [
        "doc.cuont: unknown key; expected one of count, extra, flag, inner, items, kind, limit, "
        "name, pair, tags",
        "doc.inner.mod: unknown key; expected one of mode, rate",
    ]


def test_a_choice_lists_the_allowed_values():
    _, errors = _check({"name": "n", "items": [{}], "inner": {"mode": "c"}, "kind": "z"})
    assert errors == ["doc.kind: unknown kind 'z'; expected one of 'x', 'y'",
                      "doc.inner.mode: expected one of 'a', 'b', got 'c'"]


def test_missing_required_key():
    _, errors = _check({"items": [{}]})
    assert errors == ["doc.name: missing; expected a string"]
    data = copy.deepcopy(BASE)
    del data["datasets"], data["models"][0]["name"]
    with pytest.raises(SuiteConfigError) as err:
        parse_suite(data)
    assert err.value.errors == [
        "datasets: missing; expected a non-empty array of tables ([[datasets]])",
        "models[0].name: missing; expected a string"]


def test_nested_paths_and_every_error_at_once():
    out, errors = _check({"name": "n", "count": -2, "bogus": 1,
                          "items": [{"rate": 1}, {"rate": -1, "mode": "q"}, {"mode": "b"}]})
    assert errors == [
        "doc.bogus: unknown key; expected one of count, extra, flag, inner, items, kind, limit, "
        "name, pair, tags",
        "doc.count: expected an integer >= 1, got -2",
        "doc.items[1].rate: expected a number > 0, got -1.0",
        "doc.items[1].mode: expected one of 'a', 'b', got 'q'",
    ]
    # a table with an error becomes None; the others keep their index
    assert out["items"] == [{"rate": 1.0}, None, {"mode": "b"}]


def test_a_partial_table_keeps_its_valid_keys():
    @dataclass(frozen=True, kw_only=True)
    class Doc:
        section: Inner = option(None, partial=True)
        strict: Inner = option(None)

    out, errors = _check({"section": {"rate": -1, "mode": "b"},
                          "strict": {"rate": -1, "mode": "b"}}, Doc, "")
    assert out == {"section": {"mode": "b"}}
    assert errors == ["section.rate: expected a number > 0, got -1.0",
                      "strict.rate: expected a number > 0, got -1.0"]


def test_top_level_paths_and_non_tables():
    _, errors = _check({"name": "n", "items": [{}], "x": 1}, path="")
    assert errors == ["x: unknown key; expected one of count, extra, flag, inner, items, kind, "
                      "limit, name, pair, tags"]
    out, errors = _check([1, 2], path="doc")
    assert out is None and errors == ["doc: expected a table, got list [1, 2]"]


def test_check_value_and_fields_built_at_run_time():
    errors = Errors()
    assert check_value(Inner, "mode", "b", "override.mode", errors) == "b"
    assert check_value(Inner, "mode", "z", "override.mode", errors) is None
    fields = {"k": Field("k", int, 1, minimum=1)}
    assert check_fields({"k": 0, "j": 1}, fields, "params", errors) == {}
    assert errors.messages == ["override.mode: expected one of 'a', 'b', got 'z'",
                               "params.j: unknown key; expected one of k",
                               "params.k: expected an integer >= 1, got 0"]


def test_describe_in_words():
    assert describe(int) == "an integer" and describe(float) == "a number"
    assert describe(int | list[int]) == "an integer or an array of integers"
    assert describe(int | float) == "a number" and describe(str | None) == "a string"
    assert describe(list[Inner], "items") == "an array of tables ([[items]])"
    assert describe(Any) == "a value"


def test_a_mutable_default_is_refused():
    with pytest.raises(TypeError, match="mutable default"):
        option([])


# ---------------------------------------------------------------- the suite's schema


def test_each_default_is_declared_once():
    assert CONFIG_TRAIN_DEFAULTS is TRAIN_DEFAULTS
    assert TRAIN_DEFAULTS == {"steps": 2000, "batch_size": 256, "lr": None,
                              "lr_schedule": "constant"}
    from densitylab._checking import fields_of

    assert fields_of(TrainSection)["lr_schedule"].choices is LR_SCHEDULES
    for key in ("description", "save_samples", "density_grid", "threads", "batch_seeds"):
        assert SuiteConfig.__dataclass_fields__[key].default == defaults(SuiteSection)[key]


def test_metric_params_follow_the_defaults_kinds():
    fields = metric_params({"threshold": 3.0, "k": 1, "flag": True, "bandwidth": None,
                            "kernel": "rbf"})
    errors = Errors()
    out = check_fields({"threshold": 3, "k": 5.0, "flag": False, "bandwidth": "x",
                        "kernel": "laplace"}, fields, "p", errors)
    assert errors.messages == []
    assert out == {"threshold": 3.0, "k": 5.0, "flag": False, "bandwidth": "x",
                   "kernel": "laplace"}
    assert isinstance(out["threshold"], float)  # 3 and 3.0: one setting, one run id
    check_fields({"threshold": "3", "k": True, "flag": 0, "kernel": 1}, fields, "p", errors)
    assert errors.messages == ["p.threshold: expected a number, got str '3'",
                               "p.k: expected a number, got bool True",
                               "p.flag: expected a boolean, got int 0",
                               "p.kernel: expected a string, got int 1"]


def test_a_suite_reports_nested_paths_and_every_error_at_once():
    data = copy.deepcopy(BASE)
    data["models"][1].update(train={"lr_schedule": "cosin", "steps": 0}, colour="red")
    data["datasets"][0]["label"] = 7
    data["suite"].update(seeds=[0, -1], density_grid=-1)
    with pytest.raises(SuiteConfigError) as err:
        parse_suite(data)
    assert err.value.errors == [
        "suite.seeds: expected seeds >= 0, got -1 at seeds[1]",
        "suite.density_grid: expected an integer >= 0, got -1",
        "datasets[0].label: expected a string, got int 7",
        "models[1].colour: unknown key; expected one of kind, name, params, preset, sample, "
        "sweep, train",
        "models[1].train.steps: expected an integer >= 1, got 0",
        f"models[1].train.lr_schedule: expected one of "
        f"{', '.join(map(repr, LR_SCHEDULES))}, got 'cosin'",
    ]


def test_the_device_override_is_checked_like_the_file():
    with pytest.raises(SuiteConfigError, match=r"suite\.device: expected one of 'auto', 'cpu', "
                                               r"'cuda' or 'cuda:N', got 'gpu'"):
        parse_suite(copy.deepcopy(BASE), device="gpu")
    assert parse_suite(copy.deepcopy(BASE), device="cuda:1").device == "cuda:1"


def test_a_count_of_seeds():
    data = copy.deepcopy(BASE)
    data["suite"]["seeds"] = 3
    assert parse_suite(data).seeds == (0, 1, 2)
    data["suite"]["seeds"] = 0
    with pytest.raises(SuiteConfigError, match=r"suite\.seeds: expected a count of seeds >= 1"):
        parse_suite(data)


# ---------------------------------------------------------------- the user guide follows the code

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user-guide.md"


def test_the_user_guides_key_tables_are_the_declaration():
    text = GUIDE.read_text(encoding="utf-8")
    begin = "<!-- begin: generated from densitylab.suite.schema.reference_markdown() -->\n"
    inside = text.split(begin, 1)[1].split("\n<!-- end: generated -->", 1)[0]
    assert inside == reference_markdown()


def test_the_user_guides_example_suite_is_valid():
    text = GUIDE.read_text(encoding="utf-8")
    example = re.search(r"^## Write a suite\n\n```toml\n(.*?)^```", text, re.S | re.M).group(1)
    cfg = parse_suite(tomllib.loads(example))
    assert {m["label"] for m in cfg.models} >= {"vae", "pacgan2", "pacgan2-published"}


def test_the_user_guides_metric_defaults_are_the_metrics_own():
    from densitylab.scoring import BUILTIN_METRICS
    from densitylab.suite import registry

    text = GUIDE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", text, re.M))
    for spec in BUILTIN_METRICS:
        cell = rows[spec.name]
        written = dict(re.findall(r"`(\w+) = ([^`]+)`", cell))
        for key, default in registry.get_metric(spec.name).defaults.items():
            assert f"`{key}" in cell, (spec.name, key)
            if key in written:
                assert tomllib.loads(f"v = {written[key]}")["v"] == default, (spec.name, key)
            else:
                assert default is None, (spec.name, key)  # "omitted: ..." in words
        assert set(written) <= set(spec.defaults), spec.name


def test_the_user_guides_default_learning_rates_are_the_models_own():
    from densitylab import models

    text = GUIDE.read_text(encoding="utf-8")
    stated = re.search(r"each model's own default \((.*?)\)", text, re.S).group(1)
    pairs = dict(re.findall(r"(\w+) ([0-9.e-]+)", stated.replace("#", " ")))
    classes = {"VAE": models.VAE, "GAN": models.GAN, "flow": models.Flow,
               "diffusion": models.Diffusion}
    assert set(pairs) == set(classes)
    for name, cls in classes.items():
        assert float(pairs[name]) == cls.default_lr, name
