"""The one registry of datasets, models and metrics: one lookup path, entry-point plugins
(discovered through a patched ``importlib.metadata.entry_points``, nothing installed), clear
errors, and the declared model capabilities that replace reading signatures."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import logging
import sys
import textwrap
from pathlib import Path

import _suite_fakes
import pytest
import torch

from densitylab import models
from densitylab.catalogue import describe
from densitylab.suite import MetricSpec, RunStore, parse_suite, registry, run_suite
from densitylab.suite.context import declared_options, model_log_prob
from densitylab.suite.registry import REGISTRY, PluginError

PLUGIN_MODULE = "densitylab_test_plugin_pkg"


def _suite(model: str = "gaussfit", dataset: str = "ring", metric: str = "mmd",
           **train) -> dict:
    return {"suite": {"name": "plug", "seeds": [0], "eval_samples": 64, "save_samples": False,
                      "references": False},
            "train": {"steps": 2, "batch_size": 16, **train},
            "datasets": [{"name": dataset}],
            "models": [{"name": "m", "kind": model}],
            "metrics": [{"name": metric}]}


@pytest.fixture
def entry_points(monkeypatch, tmp_path):
    """Install fake entry points: ``add(group, name, value)``; the registry reads them anew."""
    declared: list[importlib.metadata.EntryPoint] = []

    def fake(*, group=None, **_):
        return [ep for ep in declared if group is None or ep.group == group]

    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(textwrap.dedent('''
        from _suite_fakes import GaussianFit, mean_gap
        from densitylab import distributions
        from densitylab.suite import MetricSpec

        def make_blob(n_modes=1, std=0.3, **params):
            """A Gaussian blob: a ring of one mode (it reports the ring's parameters)."""
            return distributions.make("ring", n_modes=n_modes, std=std, **params)

        GAP = MetricSpec("plugin_gap", mean_gap, description="plugin metric")
        WRONG_NAME = MetricSpec("other_name", mean_gap)
        NOT_CALLABLE = 42
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    REGISTRY.refresh_plugins()

    def add(group: str, name: str, value: str) -> None:
        declared.append(importlib.metadata.EntryPoint(name, value, group))
        REGISTRY.refresh_plugins()

    yield add
    monkeypatch.undo()
    REGISTRY.refresh_plugins()
    sys.modules.pop(PLUGIN_MODULE, None)


# ---------------------------------------------------------------- one lookup path


def test_the_functions_read_the_one_registry():
    assert registry.dataset_names() == REGISTRY.datasets.names()
    assert registry.model_names() == REGISTRY.models.names()
    assert registry.metric_names() == REGISTRY.metrics.names()
    assert registry.preset_names() == REGISTRY.presets.names()
    assert {"gan", "vae", "flow", "diffusion", "oracle", "noise"} <= set(registry.model_names())
    assert registry.get_metric("mmd") is REGISTRY.metrics.get("mmd").value
    # built-in facts travel with the entry: the trained families batch their seeds
    assert registry.batched_model_class("gan") is models.BatchedGAN
    assert registry.batched_model_class("flow") is models.BatchedFlow
    assert registry.batched_model_class("oracle") is None
    assert REGISTRY.models.get("oracle").metadata["reference"] is True


def test_a_registered_name_is_seen_by_every_consumer_and_unregistered_everywhere():
    registry.register_dataset("tinyblob", lambda **params: registry.make_dataset(
        "ring", {"n_modes": 1, "std": 0.3, **params}))
    try:
        assert "tinyblob" in registry.dataset_names()
        assert "dataset tinyblob" in describe("tinyblob")
        cfg = parse_suite(_suite(dataset="tinyblob"))
        assert cfg.runs[0].config["dataset"]["name"] == "tinyblob"
    finally:
        registry.unregister("tinyblob")
    assert "tinyblob" not in REGISTRY.datasets
    with pytest.raises(ValueError, match="unknown dataset"):
        parse_suite(_suite(dataset="tinyblob"))


def test_a_registration_shadows_a_builtin_until_unregistered():
    spec = MetricSpec("mmd", _suite_fakes.mean_gap, description="shadow")
    registry.register_metric(spec)
    try:
        assert registry.get_metric("mmd") is spec
    finally:
        registry.unregister("mmd")
    assert registry.get_metric("mmd").description.startswith("MMD^2")


@pytest.mark.parametrize("namespace,expected", [
    ("datasets", "'ring'"), ("models", "'gan'"), ("metrics", "'mmd'"), ("presets", "'pacgan2d'")])
def test_an_unknown_name_lists_the_known_ones(namespace, expected):
    space = getattr(REGISTRY, namespace)
    with pytest.raises(ValueError, match=rf"unknown {space.kind} 'nope'; expected one of .*"
                                         rf"{expected}"):
        space.get("nope")


def test_bad_registrations_are_refused():
    with pytest.raises(TypeError, match="factory: expected a callable"):
        registry.register_model("x", 3)
    with pytest.raises(TypeError, match="defaults: expected a mapping"):
        registry.register_model("x", _suite_fakes.GaussianFit, defaults=[1])
    with pytest.raises(TypeError, match="spec: expected a MetricSpec"):
        registry.register_metric(_suite_fakes.mean_gap)
    assert "x" not in REGISTRY.models


# ---------------------------------------------------------------- entry points


def test_entry_point_plugins_are_listed_then_loaded_on_first_use(entry_points):
    entry_points("densitylab.models", "plugfit", f"{PLUGIN_MODULE}:GaussianFit")
    entry_points("densitylab.datasets", "plugblob", f"{PLUGIN_MODULE}:make_blob")
    entry_points("densitylab.metrics", "plugin_gap", f"{PLUGIN_MODULE}:GAP")
    assert "plugfit" in registry.model_names() and "plugblob" in registry.dataset_names()
    assert "plugin_gap" in registry.metric_names()
    assert PLUGIN_MODULE not in sys.modules  # listed from the metadata, not imported
    entry = REGISTRY.models.get("plugfit")
    assert entry.value is _suite_fakes.GaussianFit and entry.source.startswith("entry point")
    assert registry.batched_model_class("plugfit") is None
    assert registry.get_metric("plugin_gap").description == "plugin metric"
    assert f"from: entry point 'plugfit = {PLUGIN_MODULE}:GaussianFit'" in describe("plugfit")
    assert "from:" not in describe("gan")


def test_an_entry_point_plugin_runs_in_a_suite(entry_points, tmp_path):
    entry_points("densitylab.models", "plugfit", f"{PLUGIN_MODULE}:GaussianFit")
    entry_points("densitylab.datasets", "plugblob", f"{PLUGIN_MODULE}:make_blob")
    entry_points("densitylab.metrics", "plugin_gap", f"{PLUGIN_MODULE}:GAP")
    cfg = parse_suite(_suite(model="plugfit", dataset="plugblob", metric="plugin_gap"))
    result = run_suite(cfg, tmp_path / "out", show_progress=False)
    assert len(result.ok) == 1, result.summary()
    (record,) = RunStore(result.out_dir).records()
    assert record["metrics"]["plugin_gap"]["values"]["mean_gap"] >= 0.0


def test_a_broken_plugin_names_its_entry_point(entry_points):
    entry_points("densitylab.models", "broken", "densitylab_no_such_module_xyz:Model")
    assert "broken" in registry.model_names()  # listing does not import it
    with pytest.raises(PluginError, match=r"model 'broken': entry point 'broken = "
                       r"densitylab_no_such_module_xyz:Model' in group 'densitylab.models' "
                       r"failed to load: ModuleNotFoundError"):
        registry.make_model("broken", {}, data_shape=(2,))
    # the suite stops on it too, and other names still work
    with pytest.raises(PluginError, match="entry point 'broken"):
        parse_suite(_suite(model="broken"))
    assert registry.make_model("gaussfit", {}, data_shape=(2,)) is not None


@pytest.mark.parametrize("group,name,value,message", [
    ("densitylab.models", "notcallable", f"{PLUGIN_MODULE}:NOT_CALLABLE",
     "loads a int, not a callable model factory"),
    ("densitylab.metrics", "notaspec", f"{PLUGIN_MODULE}:make_blob",
     "loads a function, not a densitylab.suite.MetricSpec"),
    ("densitylab.metrics", "wrong", f"{PLUGIN_MODULE}:WRONG_NAME",
     "loads the MetricSpec 'other_name'; the entry point's name must be the metric's name"),
])
def test_a_plugin_of_the_wrong_kind_is_a_clear_error(entry_points, group, name, value, message):
    entry_points(group, name, value)
    space = REGISTRY.models if group.endswith("models") else REGISTRY.metrics
    with pytest.raises(PluginError, match=message):
        space.get(name)


def test_a_plugin_declared_twice_is_ambiguous(entry_points):
    entry_points("densitylab.models", "twice", f"{PLUGIN_MODULE}:GaussianFit")
    entry_points("densitylab.models", "twice", f"{PLUGIN_MODULE}:GaussianFit")
    with pytest.raises(PluginError, match="declared by several entry points"):
        REGISTRY.models.get("twice")


def test_a_plugin_never_replaces_a_builtin(entry_points, caplog):
    entry_points("densitylab.metrics", "mmd", f"{PLUGIN_MODULE}:GAP")
    with caplog.at_level(logging.WARNING, logger="densitylab"):
        assert registry.metric_names().count("mmd") == 1  # discovery warns
    assert registry.get_metric("mmd").fn is not _suite_fakes.mean_gap
    assert "ignoring entry point 'mmd" in caplog.text
    assert PLUGIN_MODULE not in sys.modules


# ---------------------------------------------------------------- declared capabilities


def test_builtin_models_declare_only_keywords_their_methods_take():
    # the declarations replace signature reading in the suite; here the test checks them
    for cls in (models.VAE, models.GAN, models.Flow, models.Diffusion, models.BatchedGAN,
                models.BatchedVAE, models.BatchedDiffusion):
        for method in ("fit", "sample", "log_prob"):
            if not hasattr(cls, method):
                continue
            params = inspect.signature(getattr(cls, method)).parameters
            assert declared_options(cls, method) <= set(params), (cls.__name__, method)
    assert "seed" in declared_options(models.VAE, "log_prob")
    assert "seed" not in declared_options(models.Flow, "log_prob")
    assert declared_options(models.VAE, "sample") == {"noise"}


def test_a_model_without_declarations_gets_the_plain_calls_and_runs(tmp_path):
    # GaussianFit declares nothing: a plugin written to the basic contract
    assert not hasattr(_suite_fakes.GaussianFit, "fit_options")
    cfg = parse_suite(_suite(metric="log_likelihood"))
    result = run_suite(cfg, tmp_path, show_progress=False)
    assert len(result.ok) == 1, result.summary()
    (record,) = RunStore(result.out_dir).records()
    assert "heldout_loglik" in record["metrics"]["log_likelihood"]["values"]


@pytest.mark.parametrize("train,message", [
    ({"lr_schedule": "cosine"}, "fit_options do not declare lr_schedule"),
    ({"train_size": 32}, "fit_options do not declare train_size"),
    ({"eval_every": 1}, "fit_options do not declare callback"),
])
def test_an_undeclared_fit_option_is_refused_when_the_suite_loads(train, message):
    with pytest.raises(ValueError, match=message):
        parse_suite(_suite(**train))


def test_an_undeclared_sample_option_is_refused_when_the_suite_loads():
    data = _suite()
    data["models"][0]["sample"] = {"noise": True}
    with pytest.raises(ValueError, match="sample_options do not declare 'noise'"):
        parse_suite(data)


def test_log_prob_gets_a_seed_only_when_declared():
    class Seeded(_suite_fakes.GaussianFit):
        log_prob_options = frozenset({"seed"})

        def log_prob(self, x, seed=None):
            return torch.full((len(x),), float(seed))

    class Undeclared(Seeded):
        log_prob_options = frozenset()

    x = torch.zeros(3, 2)
    seeded = model_log_prob(Seeded(2), x, seed=5)
    assert seeded[0] > 0  # a derived seed was passed
    with pytest.raises(TypeError):  # float(None): no seed was passed
        model_log_prob(Undeclared(2), x, seed=5)


def test_a_malformed_declaration_is_a_type_error():
    class Bad:
        fit_options = "lr_schedule"  # a string, not a set of names

    with pytest.raises(TypeError, match=r"Bad\.fit_options: expected a collection"):
        declared_options(Bad(), "fit")


def test_metric_applies_gets_the_metric_parameters(tmp_path):
    seen = []

    def applies(ctx, scale):
        seen.append(scale)
        return None if scale > 0 else "scale is not positive"

    registry.register_metric(MetricSpec("scaled_gap", lambda ctx, scale: {"gap": scale},
                                        {"scale": 1.0}, applies))
    try:
        data = _suite(metric="scaled_gap")
        data["metrics"][0]["params"] = {"scale": -1.0}
        result = run_suite(parse_suite(data), tmp_path, show_progress=False)
    finally:
        registry.unregister("scaled_gap")
    (record,) = RunStore(result.out_dir).records()
    assert seen == [-1.0]
    assert record["metrics"]["scaled_gap"] == {"skipped": "scale is not positive"}


def test_an_applies_that_fails_is_that_metrics_error_not_the_runs(tmp_path):
    # e.g. a check written for the old one-argument form: the other metrics still count
    registry.register_metric(MetricSpec("old_gap", lambda ctx, scale: {"gap": scale},
                                        {"scale": 1.0}, lambda ctx: None))
    try:
        data = _suite(metric="old_gap")
        data["metrics"].append({"name": "mean_gap"})
        result = run_suite(parse_suite(data), tmp_path, show_progress=False)
    finally:
        registry.unregister("old_gap")
    (record,) = RunStore(result.out_dir).records()
    assert record["status"] == "ok"
    assert record["metrics"]["old_gap"]["error"].startswith("TypeError")
    assert "mean_gap" in record["metrics"]["mean_gap"]["values"]


def test_the_suite_never_reads_a_signature():
    # model and metric interfaces are declared (fit_options, MetricSpec.applies(ctx, **params)),
    # so no module of the suite calls inspect.signature (getdoc, for describe, is fine)
    suite = Path(registry.__file__).parent
    calls = [f"{path.name}:{node.lineno}" for path in sorted(suite.glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr in ("signature", "getfullargspec")]
    assert calls == []
