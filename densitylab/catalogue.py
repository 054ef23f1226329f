"""What a suite can name, with every parameter and its default (``densitylab list --verbose``,
``densitylab describe NAME``).

Defaults are read from built objects, not from signatures: a dataset built with no parameters
reports them in ``target.params``, a model built for 2D points in ``model.config`` (the same
resolution the suite uses for run ids), a metric in its :class:`~.registry.MetricSpec`.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from ._checking import read_toml
from .suite import registry
from .suite.config import builtin_suites

__all__ = ["describe", "describe_all"]



def _params_text(params: dict[str, Any] | None,
                 choices: dict[str, list[str]] | None = None) -> str:
    if params is None:
        return "    (parameters unknown: building it with its defaults failed)"
    if not params:
        return "    (no parameters)"
    choices = choices or {}
    return "\n".join(f"    {k} = {v!r}" + (f"  (one of {', '.join(map(repr, choices[k]))})"
                                             if choices.get(k) else "")
                     for k, v in params.items())


#: What a constrained string parameter's check says (``_validation.check_choice``).
_EXPECTED = re.compile(r"expected one of ((?:'[^']*'(?:, )?)+)")
_PROBE = "\x00not-a-choice"


def _choices(params: dict[str, Any] | None, build: Callable[[dict[str, Any]], Any]
             ) -> dict[str, list[str]]:
    """The allowed values of each string parameter, read from the error its own check gives
    for a value it cannot take (so they never drift from the code that checks them)."""
    out = {}
    for key, value in (params or {}).items():
        if not isinstance(value, str):
            continue
        try:
            build({key: _PROBE})
        except (TypeError, ValueError) as err:
            found = _EXPECTED.search(str(err))
            if found:
                out[key] = re.findall(r"'([^']*)'", found[1])
        except Exception:  # noqa: BLE001 - a check that fails otherwise: no choices shown
            continue
    return out


def _plain_text(text: str) -> str:
    """A docstring line without its Sphinx markup: ``:func:`f``` -> ``f()``, ``:math:`x``` ->
    ``x``, ````code```` -> ``code``."""
    text = re.sub(r":(?:func|meth):`~?([^`]+)`", lambda m: m[1].split(".")[-1] + "()", text)
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m[1].split(".")[-1] if m[0].startswith(
        (":class:", ":mod:", ":data:", ":attr:")) else m[1], text)
    # a literal may span two lines: its unpaired half is dropped too
    return re.sub(r"``([^`]+)``", r"\1", text).replace("``", "")


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return _plain_text(doc.strip().splitlines()[0]) if doc.strip() else ""


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
    params = ({k: v for k, v in config.items() if k not in registry.SUITE_FILLED_MODEL_KEYS}
              if isinstance(config, dict) else None)
    return params, _summary(type(model))


def _model(kind: str) -> str:
    def build(params):
        return registry.make_model(kind, params, data_shape=(2,), seed=0)

    params, doc = _model_config(lambda: build({}))
    return (f"model {kind} (hyperparameters for 2D data)\n" + (f"    {doc}\n" if doc else "")
            + _params_text(params, _choices(params, build)))


def _preset(name: str) -> str:
    kind = None

    def build():
        nonlocal kind
        kind, model = registry.make_preset(name, {}, data_shape=(2,), seed=0)
        return model

    params, _ = _model_config(build)
    choices = _choices(params, lambda p: registry.make_preset(name, p, data_shape=(2,), seed=0))
    return (f"preset {name} (model kind {kind}; [[models]] preset = {name!r}, params override "
            f"key by key)\n" + _params_text(params, choices))


def _metric(name: str) -> str:
    spec = registry.get_metric(name)
    reports = ("\n    reports: " + ", ".join(
        v + (f" ({info.direction_text()})" if info.direction_text() else "")
        for v, info in spec.values.items())) if spec.values else ""
    if spec.params or spec.values:  # declared: what each parameter takes, from its constraints
        return (f"metric {name}: {spec.description}\n" + ("\n".join(
            f"    {p.name} = {p.default!r}  ({' or '.join(map(str, p.constraints))}"
            + (f"; {p.doc}" if p.doc else "") + ")" for p in spec.params) or "    (no parameters)")
            + reports)
    choices = {} if spec.check is None else _choices(
        spec.defaults, lambda p: spec.check(**{**spec.defaults, **p}))
    return f"metric {name}: {spec.description}\n" + _params_text(spec.defaults, choices)


def _suite(name: str) -> str:
    """A built-in suite: its description, seeds, datasets, models and metrics, and how to run
    it (read from its TOML; nothing is built)."""
    path = builtin_suites()[name]
    data = read_toml(path)
    suite = data.get("suite", {})

    def names(section: str) -> str:
        return ", ".join(str(e.get("label") or e.get("name")) for e in data.get(section, [])
                         if isinstance(e, dict)) or "(none)"

    lines = [f"suite {name} (built-in: {path})"]
    if suite.get("description"):
        lines.append(textwrap.fill(" ".join(str(suite["description"]).split()), 96,
                                   initial_indent="    ", subsequent_indent="    "))
    lines += [f"    seeds: {suite.get('seeds', '(default)')}; training steps: "
              f"{data.get('train', {}).get('steps', '(default)')}",
              f"    datasets: {names('datasets')}", f"    models: {names('models')}",
              f"    metrics: {names('metrics')}",
              f"    run it: densitylab run {name} --out results/{name} --report "
              f"(a copy to edit: {path})"]
    return "\n".join(lines)


def _source(namespace, name: str) -> str:
    """Where a name that is not built in comes from (a run-time registration or an entry
    point), as a line to add to its description; empty for a built-in."""
    source = namespace.get(name).source
    return "" if source == "built-in" else f"\n    from: {source}"


def describe(name: str) -> str:
    """Everything named ``name`` (a dataset, model kind, preset, metric or built-in suite) with
    its parameters (and the choices of a constrained one) and, for a name that is not built in,
    where it comes from.

    Raises:
        ValueError: nothing has that name (the message lists what does).
    """
    parts = []
    reg = registry.REGISTRY
    for namespace, text in ((reg.datasets, _dataset), (reg.models, _model),
                            (reg.presets, _preset), (reg.metrics, _metric)):
        if name in namespace:
            parts.append(text(name) + _source(namespace, name))
    if name in builtin_suites():  # `densitylab list` prints the built-in suites too
        parts.append(_suite(name))
    if not parts:
        known = sorted({*registry.dataset_names(), *registry.model_names(),
                        *registry.preset_names(), *registry.metric_names(),
                        *builtin_suites()})
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
