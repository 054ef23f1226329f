"""What a suite can name, with every parameter and its default (``densitylab list --verbose``,
``densitylab describe NAME``).

Defaults are read from built objects, not from signatures: a dataset built with no parameters
reports them in ``target.params``, a model built for 2D points in ``model.config`` (the same
resolution the suite uses for run ids), a metric in its :class:`~.registry.MetricSpec`.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import registry

__all__ = ["describe", "describe_all"]



def _params_text(params: dict[str, Any] | None) -> str:
    if params is None:
        return "    (parameters unknown: building it with its defaults failed)"
    if not params:
        return "    (no parameters)"
    return "\n".join(f"    {k} = {v!r}" for k, v in params.items())


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _dataset(name: str) -> str:
    try:
        target = registry.make_dataset(name, {})
        params = dict(getattr(target, "params", None) or {})
        modes = getattr(target, "means", None)
        extra = (f"; {len(modes)} mode centres (mode_coverage applies)" if modes is not None
                 else "; no mode centres (mode_coverage does not apply)")
        doc = _summary(type(target))
    except Exception:  # noqa: BLE001 - e.g. an image set whose files are missing
        params, extra, doc = None, "", ""
    return f"dataset {name}{extra}\n" + (f"    {doc}\n" if doc else "") + _params_text(params)


def _model_config(build) -> tuple[dict[str, Any] | None, str]:
    try:
        model = build()
    except Exception:  # noqa: BLE001 - e.g. a model that needs image data
        return None, ""
    config = getattr(model, "config", None)
    params = ({k: v for k, v in config.items() if k not in registry.FILLED_IN}
              if isinstance(config, dict) else None)
    return params, _summary(type(model))


def _model(kind: str) -> str:
    params, doc = _model_config(lambda: registry.make_model(kind, {}, data_shape=(2,), seed=0))
    return (f"model {kind} (hyperparameters for 2D data)\n" + (f"    {doc}\n" if doc else "")
            + _params_text(params))


def _preset(name: str) -> str:
    kind = None

    def build():
        nonlocal kind
        kind, model = registry.make_preset(name, {}, data_shape=(2,), seed=0)
        return model

    params, _ = _model_config(build)
    return (f"preset {name} (model kind {kind}; [[models]] preset = {name!r}, params override "
            f"key by key)\n" + _params_text(params))


def _metric(name: str) -> str:
    spec = registry.get_metric(name)
    return f"metric {name}: {spec.description}\n" + _params_text(spec.defaults)


def _source(namespace, name: str) -> str:
    """Where a name that is not built in comes from (a run-time registration or an entry
    point), as a line to add to its description; empty for a built-in."""
    source = namespace.get(name).source
    return "" if source == "built-in" else f"\n    from: {source}"


def describe(name: str) -> str:
    """Everything named ``name`` (a dataset, model kind, preset or metric) with its parameters
    and, for a name that is not built in, where it comes from.

    Raises:
        ValueError: nothing has that name (the message lists what does).
    """
    parts = []
    reg = registry.REGISTRY
    for namespace, text in ((reg.datasets, _dataset), (reg.models, _model),
                            (reg.presets, _preset), (reg.metrics, _metric)):
        if name in namespace:
            parts.append(text(name) + _source(namespace, name))
    if not parts:
        known = sorted({*registry.dataset_names(), *registry.model_names(),
                        *registry.preset_names(), *registry.metric_names()})
        raise ValueError(f"name: nothing is called {name!r}; expected one of "
                         f"{', '.join(known)}")
    return "\n\n".join(parts)


def describe_all() -> str:
    """Every dataset, model, preset and metric with its parameters and defaults."""
    parts = ["DATASETS"] + [_dataset(n) for n in registry.dataset_names()]
    parts += ["MODELS"] + [_model(n) for n in registry.model_names()]
    presets = registry.preset_names()
    if presets:
        parts += ["PRESETS"] + [_preset(n) for n in presets]
    parts += ["METRICS"] + [_metric(n) for n in registry.metric_names()]
    return "\n".join(parts)
