"""Which code produced a run: densitylab's version, the git commit of its checkout (when there
is one) and a fingerprint of the source the run executed (``docs/user-guide.md``,
"Provenance", shows a record's ``code`` entry and how the folder check uses it).

The fingerprint hashes three parts, each :func:`module_fingerprint` of its modules' source
files, read once per process (the code the process loaded):

- ``model``: the model class's module and its densitylab bases, plus for a built-in model the
  shared training code (:data:`MODEL_SHARED`); a plugin model: its class's own module.
- ``dataset``: the target class's module and its densitylab bases; for an image dataset every
  module of ``densitylab/images``.
- ``metrics``: every module of ``densitylab/metrics`` and ``densitylab/scoring``, the suite's
  evaluation code (:data:`METRIC_MODULES`) and the module of a plugin metric's function.

A record without a ``code`` entry predates provenance: its code is unknown
(:func:`fingerprint_of` returns None).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from . import registry

__all__ = ["run_code", "spec_code", "fingerprint_of", "git_state", "module_fingerprint",
           "MODEL_SHARED", "METRIC_MODULES"]

#: Shared code every built-in model's training runs (see the module docstring).
MODEL_SHARED = ("densitylab.models.networks", "densitylab.models.train",
                "densitylab.models.trainer", "densitylab.models.data",
                "densitylab.models.batched", "densitylab.losses", "densitylab.suite.train")
#: The suite's evaluation code, besides every module of ``densitylab.metrics`` and of the score
#: stage, ``densitylab.scoring``.
METRIC_MODULES = ("densitylab.suite.evaluate", "densitylab.suite.score",
                  "densitylab.suite.context")

_PACKAGE = Path(__file__).resolve().parent.parent  # .../densitylab


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool or None}`` of the checkout densitylab is
    imported from (None for both outside a git checkout or without git); read once per
    process."""
    root = _PACKAGE.parent
    none = {"git_commit": None, "git_dirty": None}
    if not (root / ".git").exists():
        return none
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index lock of a shared tree
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, env=env, check=False)
        if head.returncode != 0:
            return none
        diff = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--",
                               _PACKAGE.name], capture_output=True, timeout=10, env=env,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return none
    return {"git_commit": head.stdout.strip() or None,
            "git_dirty": None if diff.returncode not in (0, 1) else diff.returncode == 1}


def _file_of(module: str) -> Path | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            return None
    path = getattr(mod, "__file__", None)
    return Path(path) if path and Path(path).is_file() else None


@functools.lru_cache(maxsize=512)
def _file_digest(path: str) -> bytes:
    """SHA-256 of a source file, read once per process: the code this process has loaded, not a
    later edit on disk (a long suite whose files are edited while it runs keeps its fingerprint,
    and a worker process started after the edit gets the new one)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


def module_fingerprint(modules) -> str:
    """12 hex digits of SHA-256 over (module name, digest of its source file) for each of
    ``modules`` in name order; a module without a source file (built in a notebook) counts by
    its name alone."""
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        path = _file_of(name)
        digest = _file_digest(str(path)) if path is not None else b""
        h.update(name.encode() + b"\0" + digest + b"\0")
    return h.hexdigest()[:12]


def _package_modules(package: str) -> list[str]:
    folder = _PACKAGE.joinpath(*package.split(".")[1:])
    return [f"{package}.{p.stem}" if p.stem != "__init__" else package
            for p in sorted(folder.glob("*.py"))]


def _class_modules(obj: Any) -> list[str]:
    """The module of ``obj``'s class and of its bases inside densitylab."""
    cls = type(obj)
    return [cls.__module__] + [c.__module__ for c in cls.__mro__[1:]
                               if c.__module__.split(".")[0] == "densitylab"]


def model_modules(model: Any) -> list[str]:
    """The modules of the ``model`` part (see the module docstring)."""
    mods = _class_modules(model)
    if mods[0].startswith("densitylab.models."):
        mods += MODEL_SHARED
    return mods


def dataset_modules(target: Any) -> list[str]:
    """The modules of the ``dataset`` part (see the module docstring)."""
    mods = _class_modules(target)
    if any(m.startswith("densitylab.images") for m in mods):
        mods += _package_modules("densitylab.images")
    return mods


def metric_modules(metric_names) -> list[str]:
    """The modules of the ``metrics`` part for the registered metrics ``metric_names``."""
    mods = [*_package_modules("densitylab.metrics"), *_package_modules("densitylab.scoring"),
            *METRIC_MODULES]
    for name in metric_names:
        fn = registry.get_metric(name).fn
        module = getattr(inspect.unwrap(fn), "__module__", None) if callable(fn) else None
        if module:
            mods.append(module)
    return mods


def run_code(model: Any, target: Any, metric_names) -> dict[str, Any]:
    """The ``code`` entry of a run that trains ``model`` on ``target`` and scores it with the
    metrics ``metric_names`` (see the module docstring)."""
    parts = {"model": module_fingerprint(model_modules(model)),
             "dataset": module_fingerprint(dataset_modules(target)),
             "metrics": module_fingerprint(metric_modules(metric_names))}
    combined = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return {"densitylab": __version__, **git_state(), "fingerprint": combined, "parts": parts}


def spec_code(spec) -> dict[str, Any]:
    """:func:`run_code` of a run (a :class:`~densitylab.suite.config.RunSpec`), building its
    untrained model and its dataset as the run does; cached per dataset, model and metrics."""
    cfg = spec.config
    key = json.dumps([cfg["dataset"], cfg["model"]["kind"], cfg["model"]["params"],
                      [m["name"] for m in cfg["metrics"]], cfg.get("plugins", []),
                      spec.plugin_dir], sort_keys=True)
    return copy.deepcopy(_spec_code(key))


@functools.lru_cache(maxsize=128)
def _spec_code(key: str) -> dict[str, Any]:
    """:func:`run_code` of the run the JSON ``key`` describes (its fields, read back)."""
    dataset, kind, params, metrics, plugins, plugin_dir = json.loads(key)
    for module in plugins:
        registry.import_plugin(module, plugin_dir)
    target = registry.make_dataset(dataset["name"], dataset["params"])
    model = registry.make_model(kind, params, data_shape=registry.data_shape_of(target), seed=0)
    return run_code(model, target, metrics)


def fingerprint_of(record) -> str | None:
    """The code fingerprint a record carries (a RunRecord or its JSON mapping); None when the
    record predates provenance (unknown code)."""
    code = record.get("code") if isinstance(record, dict) else getattr(record, "code", None)
    value = code.get("fingerprint") if isinstance(code, dict) else None
    return value if isinstance(value, str) else None
