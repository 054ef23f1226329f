"""The package's shape: no import cycle between densitylab modules (even one hidden behind an
import inside a function), every module importable on its own, and the run ids of the built-in
suites pinned so that a restructuring of the suite cannot silently change them."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "densitylab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, path: Path) -> set[str]:
    """The densitylab modules ``module`` imports anywhere in its source (top level or inside a
    function), leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            node.body = []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return {m for m in out if m in MODULES and m != module}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph (Tarjan)."""
    graph = {m: _imported(m, p) for m, p in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_imports_inside_functions():
    # the cycle check is only as good as the graph: a lazy import must count as an edge
    assert "densitylab.report.markdown" in _imported(
        "densitylab.report", MODULES["densitylab.report"])
    assert "densitylab.metrics" in _imported(
        "densitylab.scoring.two_sample", MODULES["densitylab.scoring.two_sample"])


def test_no_import_cycle_outside_models():
    outside = [c for c in _cycles() if not all(m.startswith("densitylab.models") for m in c)]
    assert outside == []


def test_no_import_cycle_in_models():
    assert _cycles() == []


@pytest.mark.slow  # ~20 s wall on the loaded 2-core machine; the AST cycle check above is fast
def test_every_module_imports_alone():
    """Each module imported first, in a ``sys.modules`` holding no densitylab module (one
    interpreter: third-party modules such as torch stay loaded, so this takes seconds)."""
    names = [m for m in MODULES if m != "densitylab.__main__"]
    script = (
        "import importlib, sys, traceback\n"
        f"bad = []\nfor name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] == 'densitylab']:\n"
        "        del sys.modules[m]\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception:\n        bad.append(name + ': ' + traceback.format_exc(limit=1))\n"
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: sha256 of the space-joined run ids of each built-in suite (and the number of runs), taken
#: from `densitylab run NAME --dry-run` before the suite was split into context, metric
#: adapters, registry and execution modules. Editing a suite file changes its entry (update it
#: then, on purpose); a change from code alone would change every stored result's id.
BUILTIN_RUN_IDS = {
    # every suite with a log_likelihood metric changed when its parameters did (validated AIS
    # settings, sigma selection, quadrature, the ODE check)
    # images: rewritten on purpose (dequantised data, the flow and diffusion families, the VAE's
    # samples and means as two rows, bits_per_dim and data_copying, 5 seeds)
    "images": (80, "309d3c39a5fcb29e"),
    # pacgan2d: data_copying and calibration added, and the fixed training set made suite-wide
    "pacgan2d": (220, "9ba7b0a95e95fb72"),  # no log_likelihood (toy2d carries it); gan_alternating
    "quick": (12, "4b6107a344c0473b"),  # ring only, seeds 0-2 (quick-choice.json)
    "toy2d": (140, "b2894c9d12c298cf"),
}


@pytest.mark.parametrize("name", sorted(BUILTIN_RUN_IDS))
def test_builtin_suite_run_ids_are_unchanged(name):
    from densitylab.suite import load_suite

    ids = [run.run_id for run in load_suite(name).runs]
    digest = hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]
    assert (len(ids), digest) == BUILTIN_RUN_IDS[name]


def test_quick_suite_first_run_ids():
    # the digest above in readable form for the CI-sized suite
    from densitylab.suite import load_suite

    ids = [run.run_id for run in load_suite("quick").runs]
    assert ids[:5] == ["2d86c3ea3aac", "2b35c519c760", "48df217fb131", "18c8bf3dcf0e",
                       "d4b82d47810d"]


# ---------------------------------------------------------------- the model contract


def test_builtin_models_rebuild_save_load_and_batch_as_their_registered_class(tmp_path):
    # make_model already checks the Model protocol; what it cannot check is that the kind
    # builds its registered class, whose config rebuilds it, whose file loads back as it, and
    # whose batched form is derived from it
    from densitylab import models
    from densitylab.registry import REGISTRY
    from densitylab.suite import registry

    families = ["diffusion", "flow", "gan", "vae"]
    assert set(families) <= set(models.available())
    for kind in families:
        model = registry.make_model(kind, {}, data_shape=(2,), seed=0)
        cls = REGISTRY.models.get(kind).value
        assert type(model) is cls and cls.name == kind, kind
        assert type(model)(**model.config).config == model.config, kind
        loaded = models.load(model.save(tmp_path / f"{kind}.pt"))
        assert type(loaded) is cls and loaded.config == model.config, kind
        weights, loaded_weights = model.networks.state_dict(), loaded.networks.state_dict()
        assert weights.keys() == loaded_weights.keys(), kind
        assert all(torch.equal(weights[k], loaded_weights[k]) for k in weights), kind
        assert registry.batched_model_class(kind).single_class is cls, kind


def test_reference_rows_sample_the_target_and_never_batch():
    from densitylab import distributions
    from densitylab.suite import registry

    ring = distributions.ring()
    for kind in ("oracle", "noise"):
        model = registry.make_model(kind, {}, data_shape=(2,))
        model.fit(ring, steps=0, batch_size=0, seed=0)
        x = model.sample(50, seed=0)
        assert tuple(x.shape) == (50, 2), kind
        assert torch.equal(x, model.sample(50, seed=0)), kind  # seeded
        assert registry.batched_model_class(kind) is None, kind
        assert registry.REGISTRY.models.get(kind).metadata["reference"] is True, kind
    oracle = registry.make_model("oracle", {}, data_shape=(2,))
    oracle.fit(ring, steps=0, batch_size=0, seed=0)
    x = ring.sample(20, seed=1)
    assert torch.allclose(oracle.log_prob(x), ring.log_prob(x))


def test_a_registered_model_without_log_prob_fails_when_the_suite_loads():
    from densitylab.suite import parse_suite, registry

    class NoLogProb:
        has_density = False

        def __init__(self, data_dim, seed=None):
            pass

        def fit(self, data, steps, batch_size, seed):
            return []

        def sample(self, n, seed=None):
            return [[0.0, 0.0]] * n

    registry.register_model("nolp", NoLogProb)
    try:
        with pytest.raises((TypeError, ValueError), match=r"'nolp'.*lacks log_prob"):
            parse_suite({"suite": {"name": "t", "seeds": [0]},
                         "datasets": [{"name": "ring"}],
                         "models": [{"name": "m", "kind": "nolp"}],
                         "metrics": [{"name": "mmd"}]})
    finally:
        registry.unregister("nolp")
