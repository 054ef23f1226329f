"""Each metric declared once: every built-in metric's parameters (default and constraints) and
values (direction, ideal, description, sanity-battery score) are declared on its MetricSpec,
the suite's checker refuses an invalid value of each constrained parameter with a message
generated from the declaration, and a metric added in a plugin module reaches the results
table, the explanations, the figures and the headline tests with no other file edited."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from densitylab import distributions, images, models
from densitylab.metrics import sanity
from densitylab.report import write_report
from densitylab.report.figures import metric_bars
from densitylab.report.inference import load_table, pairwise_tests
from densitylab.report.metric_info import direction_text, headline_values
from densitylab.scoring import (
    BUILTIN_METRICS,
    HIGHER,
    LOWER,
    TARGET,
    EvalContext,
    MetricSpec,
    Param,
    ValueInfo,
    evaluate_metrics,
)
from densitylab.scoring.constraints import Integer, validate
from densitylab.suite import load_suite, parse_suite, registry, run_suite

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
_SUITE = {
    "suite": {"name": "specs", "device": "cpu", "seeds": [0], "eval_samples": 200,
              "references": False},
    "datasets": [{"name": "ring"}],
    "models": [{"name": "vae", "kind": "vae"}],
    "metrics": [],
}


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("name", sorted(_SPECS))
def test_every_parameter_is_declared_once_with_a_default_and_a_constraint(name):
    spec = _SPECS[name]
    assert spec.defaults == {p.name: p.default for p in spec.params}
    for param in spec.params:
        assert param.constraints, param.name
        validate(param.default, param.name, param.constraints)  # the default is valid
    spec.check(**spec.defaults)


def _invalid_values():
    """(metric, parameter, value) for each constrained parameter: a value of a kind the
    parameter takes that its declared constraints refuse (as scikit-learn generates them)."""
    out = []
    for spec in BUILTIN_METRICS:
        for param in spec.params:
            for constraint in param.constraints:
                bad = constraint.example_invalid()
                if bad is not None and not any(c.satisfied_by(bad) for c in param.constraints):
                    out.append((spec.name, param.name, bad))
    return out


_INVALID = _invalid_values()


def test_each_builtin_parameter_has_a_generated_invalid_value():
    constrained = {(m, p) for m, p, _ in _INVALID}
    for spec in BUILTIN_METRICS:
        for param in spec.params:
            assert (spec.name, param.name) in constrained, (spec.name, param.name)


@pytest.mark.parametrize(("metric", "param", "value"), _INVALID,
                         ids=[f"{m}.{p}={v!r}" for m, p, v in _INVALID])
def test_the_checker_refuses_an_invalid_value_naming_the_parameter(metric, param, value):
    data = copy.deepcopy(_SUITE)
    data["metrics"] = [{"name": metric, "params": {param: value}}]
    with pytest.raises((TypeError, ValueError), match=rf"metrics\[0\]\.params.*{param}"):
        parse_suite(data)


def test_a_value_of_the_wrong_kind_lists_what_each_constraint_takes():
    spec = _SPECS["log_likelihood"]
    with pytest.raises(TypeError, match=r"sigma: expected a positive number or 'validated' or "
                                        r"None, got str 'wide'"):
        spec.check(**{**spec.defaults, "sigma": "wide"})


def test_a_typo_lists_the_valid_parameters():
    with pytest.raises(ValueError, match=r"kk: unknown parameter of metric 'kl_knn'; expected "
                                         r"one of k"):
        _SPECS["kl_knn"].check_params({"kk": 2})
    data = copy.deepcopy(_SUITE)
    data["metrics"] = [{"name": "c2st", "params": {"fold": 3}}]
    with pytest.raises(ValueError, match=r"metrics\[0\]\.params\.fold: unknown key; expected "
                                         r"one of classifier, folds"):
        parse_suite(data)


def test_a_declaration_must_hold_its_own_default():
    with pytest.raises(ValueError, match="k must be >= 1"):
        Param("k", 0, (Integer(minimum=1),))
    with pytest.raises(ValueError, match="at least one constraint"):
        Param("k", 1, ())


# ---------------------------------------------------------------- values


def _run_values(spec_name: str, ctx: EvalContext, **params) -> dict[str, float]:
    out = evaluate_metrics(ctx, [{"name": spec_name, "params": {**_SPECS[spec_name].defaults,
                                                                **params}}])[spec_name]
    assert "values" in out, out
    return out["values"]


def _ctx(model, target, n=200, seed=0, train_size=None):
    samples = torch.as_tensor(model.sample(n, seed=1)).float()
    reference = torch.as_tensor(target.sample(n, seed=2)).float()
    return EvalContext(target, model, samples, reference, seed, n, torch.device("cpu"),
                       train_size=train_size)


def _check_declared(spec: MetricSpec, values: dict[str, float]) -> None:
    assert values, spec.name
    for name in values:
        info = spec.value_info(name)
        assert isinstance(info, ValueInfo), f"{spec.name}: {name} has no ValueInfo"
        assert info.direction in (HIGHER, LOWER, TARGET, None)
        assert len(info.describe(spec.defaults)) > 20, (spec.name, name)
        assert info.sanity_role in (*sanity.ROLES, None)
        if info.direction == TARGET:
            assert info.ideal is not None


def _two_d_runs():
    """Every 2D metric's values on a small real run: an untrained VAE (a density, an ELBO and a
    latent quadrature), a GAN scored under a stated sigma, a fixed training set."""
    ring = distributions.ring(n_modes=4, radius=1.0, std=0.1)
    vae = models.VAE(data_dim=2, latent_dim=2, seed=0)
    gan = models.GAN(data_dim=2, latent_dim=2, seed=0)
    vae_ctx = _ctx(vae, ring, train_size=100)
    return [
        ("mode_coverage", vae_ctx, {}),
        ("mmd", vae_ctx, {}),
        ("kl_knn", vae_ctx, {}),
        ("log_likelihood", vae_ctx, {"num_samples": 20}),
        ("log_likelihood", _ctx(gan, ring), {"num_samples": 20, "sigma": 0.2,
                                            "estimator": "both", "ais_steps": 5,
                                            "ais_chains": 2}),
        ("kl_mc", vae_ctx, {"num_samples": 20}),
        ("prdc", vae_ctx, {}),
        ("data_copying", vae_ctx, {}),
        ("calibration", vae_ctx, {"num_points": 20}),
        ("prd_curve", vae_ctx, {"classifier": "logistic", "folds": 2}),
        ("c2st", vae_ctx, {"classifier": "logistic", "folds": 2}),
        ("sliced_wasserstein", vae_ctx, {"num_projections": 8}),
        ("energy_distance", vae_ctx, {}),
    ]


@pytest.mark.filterwarnings("ignore:.*before fit")  # untrained networks are enough here
def test_every_value_of_a_small_2d_run_is_declared():
    seen = set()
    for name, ctx, params in _two_d_runs():
        _check_declared(_SPECS[name], _run_values(name, ctx, **params))
        seen.add(name)
    # the image metrics are walked by the slow test below
    assert seen | {"stacked_modes", "feature_metrics", "bits_per_dim"} == set(_SPECS)


@pytest.mark.slow  # trains the digit classifier once when it is not cached
@pytest.mark.filterwarnings("ignore:.*before fit")
def test_every_value_of_a_small_image_run_is_declared():
    digits = images.Digits("train", dequantize=True)
    flow = models.Flow(data_shape=(1, 8, 8), hidden=(8,), num_layers=1, seed=0)
    real = torch.as_tensor(digits.sample(64, seed=1)).float()  # images in [0, 1] as samples
    ctx = EvalContext(digits, flow, real, real, 0, 64, torch.device("cpu"))
    _check_declared(_SPECS["feature_metrics"], _run_values("feature_metrics", ctx))
    _check_declared(_SPECS["bits_per_dim"], _run_values("bits_per_dim", ctx, num_samples=20))
    stacked = images.StackedDigits("train")
    samples = torch.as_tensor(stacked.sample(64, seed=1)[0]).float()
    sctx = EvalContext(stacked, flow, samples, samples, 0, 64, torch.device("cpu"))
    _check_declared(_SPECS["stacked_modes"], _run_values("stacked_modes", sctx))


def test_declared_values_agree_with_the_sanity_battery():
    battery = {score.name: score for score in sanity.default_scores()}
    for spec in BUILTIN_METRICS:
        for name, info in spec.values.items():
            if info.sanity is None:
                continue
            score = battery[info.sanity]
            if score.role == "discrepancy":
                assert info.direction in (LOWER, TARGET), (spec.name, name)
            else:
                assert info.direction in (HIGHER, TARGET), (spec.name, name)
            if info.ideal is not None:
                assert info.ideal == score.ideal, (spec.name, name)


def test_headline_values_and_directions_come_from_the_declarations():
    assert direction_text("c2st") == "0.5 = as the target"  # had no direction before
    assert direction_text("density", "prdc") == "1 = as the target"
    # a labelled entry's value: found through its metric (several metrics could give the name)
    assert direction_text("mmd_modes", "mmd_modes", "mmd") == "lower is better"
    assert direction_text("mmd_modes", "mmd_modes") is None
    assert direction_text("kl_mc_stderr") is None


# ---------------------------------------------------------------- a metric added in 2 files


_TOY = '''
"""A toy metric: how far the model's sample mean is from the target's."""

from densitylab.scoring import LOWER, MetricSpec, Param, Positive, ValueInfo
from densitylab.suite import register_metric


def toy_gap(ctx, scale):
    """Distance between the model-sample mean and the reference-sample mean, times scale."""
    gap = ctx.samples.double().mean(0) - ctx.reference.double().mean(0)
    return {"toy_gap": scale * float(gap.norm())}


TOY_GAP = MetricSpec(
    "toy_gap", toy_gap, description="distance between sample means",
    params=(Param("scale", 1.0, (Positive(),), "a factor"),),
    values={"toy_gap": ValueInfo(LOWER, lambda p: f"toy distance between the sample means, "
                                                  f"scaled by {p['scale']:g}", 0.0,
                                 headline=True)})
register_metric(TOY_GAP)
'''

_TOY_SUITE = '''
[suite]
name = "toy"
device = "cpu"
seeds = [0, 1]
eval_samples = 200
references = false
plugins = ["toy_metric_plugin"]

[train]
steps = 2
batch_size = 32

[[datasets]]
name = "ring"
params = { n_modes = 4, radius = 1.0, std = 0.05 }

[[models]]
name = "gan"
kind = "gan"
params = { g_hidden = [8], d_hidden = [8] }

[[models]]
name = "flow"
kind = "flow"
params = { hidden = [8], num_layers = 1 }

[[metrics]]
name = "toy_gap"
params = { scale = 2.0 }
'''


def test_a_metric_added_in_two_files_reaches_the_whole_report(tmp_path):
    (tmp_path / "toy_metric_plugin.py").write_text(_TOY)
    suite_file = tmp_path / "toy.toml"
    suite_file.write_text(_TOY_SUITE)
    out = tmp_path / "out"
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text(_TOY_SUITE.replace("scale = 2.0", "scale = -1.0"))
    try:
        # the plugin's declared constraint refuses a bad value when the suite loads
        with pytest.raises((TypeError, ValueError), match=r"params: scale must be finite and > 0"):
            load_suite(bad_file)
        run_suite(load_suite(suite_file), out, show_progress=False)
        paths = write_report(out, figures=False)
        text = paths.markdown.read_text()
        # the results table
        assert "| toy_gap | gan |" in text and "| toy_gap | flow |" in text
        # the explanations, worded for the entry's parameters
        assert "- `toy_gap`: toy distance between the sample means, scaled by 2" in text
        # the headline tests, with the declared direction
        table = load_table(out)
        assert "toy_gap" in headline_values(table)
        tests = pairwise_tests(table)
        assert list(tests["metric"]) == ["toy_gap"]
        assert "| ring | toy_gap | gan (2) | flow (2) |" in text
        assert direction_text("toy_gap", "toy_gap") == "lower is better"
        # the figures' metric list, titled with the declared direction
        fig = metric_bars(table[table["status"] == "ok"], "ring")
        assert [ax.get_title() for ax in fig.axes if ax.get_title()] == \
            ["toy_gap\n(lower is better)"]
    finally:
        registry.unregister("toy_gap")
        sys.modules.pop("toy_metric_plugin", None)
