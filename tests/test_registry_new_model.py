"""Adding a model kind touches two files: a model module with one registration line, and the
suite that names it. Nothing in densitylab changes, yet the new kind trains its seeds as one
batched computation (derived from its engine training step) and loads back from a file."""

from __future__ import annotations

import sys
import textwrap

import pytest

from densitylab import models
from densitylab.registry import REGISTRY, unregister
from densitylab.suite import RunStore, load_suite, run_suite
from densitylab.suite.registry import batched_model_class

TOY_MODULE = "toy_gaussian_plugin"

# A diagonal Gaussian x = loc + exp(log_scale) * z trained by maximum likelihood: the
# engine step (_param_groups/_step) is all a model writes to be batchable.
TOY_SOURCE = '''
import math

import torch
from torch import nn

from densitylab.models import GenerativeModel
from densitylab.models.base import check_data, seeded_init
from densitylab.registry import register_model


class ToyGaussian(GenerativeModel):
    """A diagonal Gaussian fitted by maximum likelihood."""

    name = "toygaussian"
    has_density = True
    default_lr = 0.05

    def __init__(self, data_dim=2, init_std=1.0, seed=None):
        super().__init__({"data_dim": data_dim, "init_std": init_std, "seed": seed},
                         (data_dim,))
        params = nn.ParameterDict()
        with seeded_init(seed):
            params["loc"] = nn.Parameter(init_std * torch.randn(data_dim))
            params["log_scale"] = nn.Parameter(torch.zeros(data_dim))
        self.networks["gauss"] = params

    def _param_groups(self):
        return {"gauss": self.networks}

    def _step(self, eng):
        return {"loss": eng.update("gauss", "nll_objective", eng.batch())}

    def nll_objective(self, batch):
        return -self._log_prob(batch).mean()

    def _log_prob(self, x):
        g = self.networks["gauss"]
        z = (x - g["loc"]) * torch.exp(-g["log_scale"])
        return (-0.5 * z.square() - g["log_scale"] - 0.5 * math.log(2 * math.pi)).sum(-1)

    def log_prob(self, x):
        x = check_data(x, self.data_shape).to(device=self.device, dtype=self._dtype())
        with torch.no_grad():
            return self._log_prob(x)

    def _sample(self, n, gen):
        return self._sample_from(*self._sample_inputs(n, gen))

    def _sample_inputs(self, n, gen):
        return (torch.randn(n, self.data_dim, generator=gen, device=self.device,
                            dtype=self._dtype()),)

    def _sample_from(self, z):
        g = self.networks["gauss"]
        return g["loc"] + torch.exp(g["log_scale"]) * z


register_model("toygaussian", ToyGaussian)
'''

SUITE = """
[suite]
name = "toy"
device = "cpu"
seeds = [0, 1]
eval_samples = 300
density_grid = 0
references = false
batch_seeds = {batch_seeds}
plugins = ["{module}"]

[train]
steps = 20
batch_size = 64

[[datasets]]
name = "ring"
params = {{ n_modes = 1, radius = 1.0, std = 0.3 }}

[[models]]
name = "toy"
kind = "toygaussian"
params = {{ init_std = 0.5 }}

[[metrics]]
name = "mmd"
params = {{ bandwidth = 0.5 }}

[[metrics]]
name = "log_likelihood"
"""


@pytest.fixture
def toy_suites(tmp_path):
    """Paths of the toy suite with and without ``batch_seeds``, next to the toy model module."""
    (tmp_path / f"{TOY_MODULE}.py").write_text(textwrap.dedent(TOY_SOURCE))
    paths = {}
    for batched in (True, False):
        path = tmp_path / f"toy_{'batched' if batched else 'plain'}.toml"
        path.write_text(SUITE.format(batch_seeds=str(batched).lower(), module=TOY_MODULE))
        paths[batched] = path
    yield paths
    unregister("toygaussian")
    sys.modules.pop(TOY_MODULE, None)


def test_a_model_added_in_one_module_trains_its_seeds_batched_as_one_by_one(toy_suites,
                                                                            tmp_path):
    batched_cfg, plain_cfg = load_suite(toy_suites[True]), load_suite(toy_suites[False])
    toy_class = REGISTRY.models.get("toygaussian").value
    # its batched form is derived from the class, with no batched code of its own
    derived = batched_model_class("toygaussian")
    assert derived is not None and derived.single_class is toy_class
    assert models.make("toygaussian", seed=0).config["init_std"] == 1.0
    assert [r.run_id for r in batched_cfg.runs] == [r.run_id for r in plain_cfg.runs]

    res_b = run_suite(batched_cfg, tmp_path / "b", show_progress=False)
    res_p = run_suite(plain_cfg, tmp_path / "p", show_progress=False)
    assert len(res_b.ok) == len(res_p.ok) == 2, res_b.summary() + res_p.summary()
    store_b, store_p = RunStore(tmp_path / "b"), RunStore(tmp_path / "p")
    for spec in batched_cfg.runs:
        rec_b, rec_p = store_b.load(spec.run_id), store_p.load(spec.run_id)
        assert rec_b["batched"]["seeds"] == [0, 1]  # the two seeds trained as one computation
        assert "batched" not in rec_p
        assert rec_b["history"]["steps"] == rec_p["history"]["steps"] == 20
        for metric in ("mmd", "log_likelihood"):
            values_b, values_p = rec_b["metrics"][metric]["values"], \
                rec_p["metrics"][metric]["values"]
            assert values_b == pytest.approx(values_p, rel=1e-4, abs=1e-6), metric
    # the two seeds really trained (to different points), so the match is not a triviality
    mmds = [store_b.load(s.run_id)["metrics"]["mmd"]["values"] for s in batched_cfg.runs]
    assert mmds[0] != mmds[1]


def test_a_model_added_in_one_module_loads_back_from_its_file(toy_suites, tmp_path):
    load_suite(toy_suites[False])  # imports the plugin, which registers the kind
    model = models.make("toygaussian", init_std=0.5, seed=3)
    path = model.save(tmp_path / "toy.pt")
    loaded = models.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.networks.state_dict()["gauss.loc"].tolist() == \
        model.networks.state_dict()["gauss.loc"].tolist()


def test_batched_class_is_derived_from_the_class():
    class WiderVAE(models.VAE):  # a family's subclass keeps the family's batched checks
        pass

    derived = models.batched_class(WiderVAE)
    assert issubclass(derived, models.BatchedVAE) and derived.single_class is WiderVAE
    assert models.batched_class(WiderVAE) is derived  # one class per model class
    assert models.batched_class(models.GAN) is models.BatchedGAN
    assert models.batched_class("gan") is models.BatchedGAN  # a family's kind
    assert models.batched_class("no_such_kind") is None
    assert models.batched_class(int) is None  # not a model class


def test_a_model_class_without_an_engine_step_has_no_batched_form():
    class Closed(models.GenerativeModel):  # trains through _start_training/_train_step
        def _sample(self, n, gen):
            raise NotImplementedError

    assert not Closed.batchable() and models.batched_class(Closed) is None


@pytest.mark.parametrize("name,replacement", [
    ("FILLED_IN", "SUITE_FILLED_MODEL_KEYS"), ("IMAGE_DATASETS", "images.available"),
    ("model_factory", "REGISTRY.models.get")])
def test_the_old_suite_registry_names_still_work_and_say_what_replaces_them(name, replacement):
    from densitylab.suite import registry

    with pytest.warns(DeprecationWarning, match=replacement):
        value = getattr(registry, name)
    if name == "FILLED_IN":
        assert value == registry.SUITE_FILLED_MODEL_KEYS == ("data_dim", "data_shape", "seed")
    elif name == "model_factory":
        assert value("gan") is models.GAN
    else:
        assert set(value) <= set(registry.dataset_names())
