"""Command line: ``densitylab run | report | compare | list | check-metrics``; the CLI only
wires.

Examples::

    densitylab run benchmarks/suites/quick.toml --out results/quick --report
    densitylab run toy2d --out results/toy2d --workers 2        # a built-in suite by name
    densitylab run toy2d --out results/toy2d --dask local       # on a Dask LocalCluster
    densitylab report results/quick
    densitylab compare results/toy2d --metric modes_covered --dataset ring gan pacgan2
    densitylab list
    densitylab check-metrics --out results/metric-checks    # the metric sanity battery
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``densitylab`` command."""
    from . import __version__
    from .suite.config import builtin_suites

    parser = argparse.ArgumentParser(
        prog="densitylab",
        description="Train generative models on known distributions and diagnose them: "
                    "run benchmark suites, write reports.",
    )
    parser.add_argument("--version", action="version", version=f"densitylab {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a benchmark suite (resumes where it stopped)")
    run.add_argument("suite", help="a suite TOML file, or a built-in suite name ("
                     + ", ".join(builtin_suites()) + ")")
    run.add_argument("--out", "-o", help="results folder (default: results/<suite name>)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"],
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

    rep = sub.add_parser("report", help="write results.csv, report.md and figures/ for a folder")
    rep.add_argument("dir", help="a results folder written by 'densitylab run'")
    rep.add_argument("--no-figures", action="store_true", help="skip the PNG figures")

    sub.add_parser("list", help="list the datasets, models, metrics and built-in suites")

    chk = sub.add_parser("check-metrics",
                         help="run the metric sanity-check battery (densitylab.metrics.sanity)")
    chk.add_argument("--out", "-o", help="folder for metric-checks.md and metric-checks.json")
    _add_compare(sub)
    return parser


def _add_compare(sub) -> None:
    cmp = sub.add_parser("compare", help="test whether two models differ on a metric across "
                         "seeds (permutation test, effect size, failures)")
    cmp.add_argument("dir", help="a results folder (or one holding only results.csv)")
    cmp.add_argument("--metric", required=True, help="a value name, e.g. modes_covered")
    cmp.add_argument("--dataset", help="only this dataset (default: every one with values)")
    cmp.add_argument("model_a")
    cmp.add_argument("model_b")


def _cmd_compare(args: argparse.Namespace) -> int:
    from .report.inference import compare, format_compare, load_table

    table = load_table(args.dir)
    print(format_compare(compare(table, args.metric, args.model_a, args.model_b,
                                 dataset=args.dataset)), end="")
    return 0


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("densitylab")
    if not any(getattr(h, "_densitylab_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._densitylab_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _cmd_list() -> int:
    from .suite import builtin_suites, registry

    print("datasets:", ", ".join(registry.dataset_names()))
    models = registry.model_names()
    print("models:  ", ", ".join(models) if models else "(none installed)")
    print("metrics:")
    for name in registry.metric_names():
        spec = registry.get_metric(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        print(f"  {name}({params}): {spec.description}")
    print("suites:  ", ", ".join(builtin_suites()))
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
        from .suite.store import RunStore

        store = RunStore(out)
        runs = select_runs(config.runs, args.only)
        for spec in runs:
            state = "done" if store.is_finished(spec.run_id) else "pending"
            print(f"{spec.run_id}  {spec.label:<32} {state}")
        print(f"{len(runs)} run(s) in suite {config.name!r}")
        return 0
    result = run_suite(config, out, only=args.only, workers=args.workers, dask=args.dask)
    print(result.summary())
    if args.report:
        _write_report(out, figures=True)
    return 1 if result.failed else 0


def _cmd_check_metrics(args: argparse.Namespace) -> int:
    from .metrics import sanity

    report = sanity.run(args.out)
    print(report.to_markdown(), end="")
    return 0


def _write_report(out, *, figures: bool) -> None:
    from .report import write_report

    paths = write_report(out, figures=figures)
    print(f"wrote {paths.csv}, {paths.markdown} and {len(paths.figures)} figure(s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``densitylab`` command; returns the exit status.

    Exit status: 0 on success, 1 when some runs failed, 2 on a usage or configuration error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(args.quiet)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "check-metrics":
            return _cmd_check_metrics(args)
        if args.command == "compare":
            return _cmd_compare(args)
        _write_report(args.dir, figures=not args.no_figures)
        return 0
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"densitylab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
