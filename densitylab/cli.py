"""Command line: ``densitylab run | report | compare | list | describe | check-metrics |
load``;
the CLI only wires.

Examples::

    densitylab run benchmarks/suites/quick.toml --out results/quick --report
    densitylab run toy2d --out results/toy2d --workers 2        # a built-in suite by name
    densitylab run toy2d --out results/toy2d --dask local       # on a Dask LocalCluster
    densitylab report results/quick
    densitylab compare results/toy2d --metric modes_covered --dataset ring gan pacgan2
    densitylab list --verbose
    densitylab describe gan
    densitylab check-metrics --out results/metric-checks    # the metric sanity battery
    densitylab plan benchmarks/suites/quick.toml            # what its seed count can decide
    densitylab load results/quick 3f2a9c0e1b7d              # a run's saved model (save_models)

Exit status: 0 on success, 1 when some runs failed or diverged (``check-metrics``: when a check
failed that no documented limitation of the metric explains), 2 on a usage or configuration
error, 130 after Ctrl-C (one line says how many runs finished and the command that resumes).
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _device_arg(value: str) -> str:
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def _verbosity_options(default) -> argparse.ArgumentParser:
    """-q / -v, accepted before and after the command (the later one wins)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1,
                        default=default,
                        help="only print errors (no progress lines, no summary)")
    common.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=1,
                        default=default, help="print debugging details as well")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``densitylab`` command."""
    from . import __version__
    from .suite.config import builtin_suites

    parser = argparse.ArgumentParser(
        prog="densitylab", parents=[_verbosity_options(0)],
        description="Train generative models on known distributions and diagnose them: "
                    "run benchmark suites, write reports.",
    )
    parser.add_argument("--version", action="version", version=f"densitylab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # after the command the options must not reset what was given before it
    common = _verbosity_options(argparse.SUPPRESS)

    run = sub.add_parser("run", parents=[common],
                         help="run a benchmark suite (resumes where it stopped)")
    run.add_argument("suite", help="a suite TOML file, or a built-in suite name ("
                     + ", ".join(builtin_suites()) + ")")
    run.add_argument("--out", "-o", help="results folder (default: results/<suite name>)")
    run.add_argument("--device", type=_device_arg, metavar="auto|cpu|cuda|cuda:N",
                     help="override the suite's device")
    run.add_argument("--workers", type=int, default=None,
                     help="local worker processes (with --dask local: Dask workers)")
    run.add_argument("--dask", metavar="local|ADDRESS",
                     help="run on Dask: 'local' starts a LocalCluster, else a scheduler address")
    run.add_argument("--only", metavar="PATTERN",
                     help="run only runs whose 'dataset/model/seed' or run id matches this "
                          "fnmatch pattern, e.g. 'ring/*' or '*/gan/0'")
    run.add_argument("--report", action="store_true", help="write the report when done")
    run.add_argument("--dry-run", action="store_true",
                     help="validate the suite and list its runs without running them")
    run.add_argument("--force", action="store_true",
                     help="the --out folder holds another configuration's results: move them "
                          "to OUT/stale/ (never deleted) instead of refusing")

    rep = sub.add_parser("report", parents=[common],
                         help="write results.csv, report.md and figures/ for a folder")
    rep.add_argument("dir", help="a results folder written by 'densitylab run'")
    rep.add_argument("--no-figures", action="store_true", help="skip the PNG figures")

    lst = sub.add_parser("list", help="list the datasets, models, metrics and built-in suites")
    lst.add_argument("-v", "--verbose", action="store_true", dest="details",
                     help="show every parameter with its default")
    lst.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1,
                     default=argparse.SUPPRESS, help="only print errors")
    desc = sub.add_parser("describe", parents=[common],
                          help="show one dataset, model, metric or preset with its parameters")
    desc.add_argument("name", help="a name printed by 'densitylab list'")

    chk = sub.add_parser("check-metrics", parents=[common],
                         help="run the metric sanity-check battery (densitylab.metrics.sanity)"
                              "; exit status 1 only on a failure that is not a documented "
                              "limitation of its metric")
    chk.add_argument("--out", "-o", help="folder for metric-checks.md and metric-checks.json")
    _add_compare(sub)
    pln = sub.add_parser("plan", parents=[common],
                         help="what a suite's seed count can decide: the smallest p-value after "
                              "the correction, and the seeds needed for 80 %% power")
    pln.add_argument("suite", help="a suite TOML file, or a built-in suite name")
    load = sub.add_parser("load", parents=[common],
                          help="load the trained model a run saved (suites with save_models = "
                               "true) and say what it is")
    load.add_argument("dir", help="a results folder written by 'densitylab run'")
    load.add_argument("run_id", help="a run id (a unique prefix is enough)")
    return parser


def _add_compare(sub) -> None:
    cmp = sub.add_parser("compare", parents=[_verbosity_options(argparse.SUPPRESS)],
                         help="test whether two models differ on a metric across "
                         "seeds (permutation test, effect size, failures)")
    cmp.add_argument("dir", help="a results folder (or one holding only results.csv)")
    cmp.add_argument("--metric", required=True, help="a value name, e.g. modes_covered")
    cmp.add_argument("--dataset", help="only this dataset (default: every one with values)")
    cmp.add_argument("model_a")
    cmp.add_argument("model_b")


def _cmd_plan(args: argparse.Namespace) -> int:
    from .report.power import format_plan, plan_suite
    from .suite import load_suite

    print(format_plan(plan_suite(load_suite(args.suite))), end="")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .report.inference import compare, format_compare, load_table

    table = load_table(args.dir)
    print(format_compare(compare(table, args.metric, args.model_a, args.model_b,
                                 dataset=args.dataset)), end="")
    return 0


def _setup_logging(verbosity: int) -> None:
    logger = logging.getLogger("densitylab")
    if not any(getattr(h, "_densitylab_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._densitylab_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel({-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[verbosity])


def _say(args: argparse.Namespace, text: str) -> None:
    """Print ``text`` unless -q was given."""
    if args.verbosity >= 0:
        print(text)


def _cmd_list(args: argparse.Namespace) -> int:
    from .catalogue import describe_all
    from .suite import builtin_suites, registry

    if args.details:
        print(describe_all())
        return 0
    print("datasets:", ", ".join(registry.dataset_names()))
    models = registry.model_names()
    print("models:  ", ", ".join(models) if models else "(none installed)")
    presets = registry.preset_names()
    if presets:
        print("presets: ", ", ".join(presets))
    print("metrics:")
    for name in registry.metric_names():
        spec = registry.get_metric(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        print(f"  {name}({params}): {spec.description}")
    print("suites:  ", ", ".join(builtin_suites()))
    print("parameters and defaults: densitylab list --verbose, or densitylab describe NAME")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from .catalogue import describe

    print(describe(args.name))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .suite import load_suite, run_suite
    from .suite.runners import select_runs

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    config = load_suite(args.suite, device=args.device)
    out = Path(args.out) if args.out else Path("results") / config.name
    if args.dry_run:
        from .suite.provenance import fingerprint_of, spec_code
        from .suite.store import RunStore

        store = RunStore(out)
        runs = select_runs(config.runs, args.only)
        for spec in runs:
            state = "done" if store.is_finished(spec.run_id) else "pending"
            if state == "done" and (fingerprint_of(store.load_record(spec.run_id))
                                    != spec_code(spec)["fingerprint"]):
                state += " (by other code)"
            print(f"{spec.run_id}  {spec.label:<32} {state}")
        print(f"{len(runs)} run(s) in suite {config.name!r}")
        from .report.power import dry_run_warning, plan_suite

        for line in dry_run_warning(plan_suite(config)):
            print(line)
        return 0
    result = run_suite(config, out, only=args.only, workers=args.workers, dask=args.dask,
                       force=args.force)
    if result.interrupted:
        done = len(result.skipped) + sum(r["status"] != "failed" for r in result.finished)
        print(f"interrupted: {done} of {result.total} run(s) finished "
              f"({len(result.finished)} record(s) written now, all kept in {out / 'runs'}); "
              f"resume with: {args.command_line}", file=sys.stderr)
        return 128 + int(result.signal or 2)  # 130 for Ctrl-C, 143 for SIGTERM
    _say(args, result.summary())
    if args.report:
        _write_report(args, out, figures=True)
    return 1 if result.failed else 0


def _cmd_load(args: argparse.Namespace) -> int:
    from .suite.store import RunStore

    store = RunStore(args.dir)
    run_id = store.resolve_run_id(args.run_id)
    model = store.load_model(run_id)
    rec = store.load_record(run_id)
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(getattr(model, "config", {}).items()))
    print(f"loaded {type(model).__name__}({params})\n"
          f"  from {store.model_path(run_id)}\n"
          f"  run {run_id}: {rec.dataset}/{rec.model}/{rec.seed}, {rec.trained_steps} steps, "
          f"status {rec.outcome}\n"
          f"  in Python: densitylab.suite.load_model({str(args.dir)!r}, {run_id!r}) or "
          f"densitylab.models.load({str(store.model_path(run_id))!r})")
    return 0


def _cmd_check_metrics(args: argparse.Namespace) -> int:
    from .metrics import sanity

    report = sanity.run(args.out)
    print(report.to_markdown(), end="")
    return 1 if report.unexpected() else 0  # documented limitations are not errors


def _write_report(args: argparse.Namespace, out, *, figures: bool) -> None:
    from .report import write_report
    from .report.published import format_check

    paths = write_report(out, figures=figures)
    _say(args, f"wrote {paths.csv}, {paths.markdown} and {len(paths.figures)} figure(s)")
    if paths.published:
        _say(args, format_check(paths.published))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``densitylab`` command; returns the exit status.

    Exit status: 0 on success, 1 when some runs failed or diverged, 2 on a usage or
    configuration error, 130 when interrupted (Ctrl-C), 143 when a suite run is stopped by
    SIGTERM (its worker processes are stopped with it).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.command_line = "densitylab " + shlex.join(argv)
    _setup_logging(args.verbosity)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "describe":
            return _cmd_describe(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "check-metrics":
            return _cmd_check_metrics(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "plan":
            return _cmd_plan(args)
        if args.command == "load":
            return _cmd_load(args)
        _write_report(args, args.dir, figures=not args.no_figures)
        return 0
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"densitylab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"densitylab {args.command}: interrupted; nothing half-written is kept; run "
              f"again with: {args.command_line}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
