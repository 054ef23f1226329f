"""Run the pending runs of a suite: in this process, in local worker processes, or on Dask.

Every runner hands plain run descriptions to :func:`densitylab.suite.evaluate.execute_run`,
which writes its own record file: workers share no state, and the folder on disk is the only
truth about what is done. Rerunning a suite skips runs with an ``"ok"`` record and retries the
others.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._runtime import logger, resolve_device
from .config import RunSpec, SuiteConfig
from .evaluate import batch_key, execute_batched_runs
from .store import RunStore

__all__ = ["SuiteResult", "run_suite", "select_runs", "pending_runs", "group_runs"]


@dataclass
class SuiteResult:
    """What one invocation of :func:`run_suite` did."""

    out_dir: Path
    total: int
    skipped: list[str] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> list[dict[str, Any]]:
        """Summaries of the runs that finished in this invocation."""
        return [r for r in self.finished if r["status"] == "ok"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Summaries of the runs that failed in this invocation."""
        return [r for r in self.finished if r["status"] != "ok"]

    def summary(self) -> str:
        """A few lines for the terminal: counts, failures and where the results are."""
        lines = [
            f"{self.total} run(s) selected: {len(self.skipped)} already done, "
            f"{len(self.ok)} finished, {len(self.failed)} failed in {self.wall_s:.1f} s",
        ]
        for r in self.failed:
            lines.append(f"  FAILED {r['label']} ({r['run_id']}): {r['error']}")
        if self.failed:
            lines.append("  failed runs are retried when the same command is run again")
        lines.append(f"results in {self.out_dir / 'runs'}")
        return "\n".join(lines)


def select_runs(runs: Iterable[RunSpec], only: str | None) -> list[RunSpec]:
    """The runs whose ``dataset/model/seed`` label or run id matches the fnmatch ``only``."""
    runs = list(runs)
    if not only:
        return runs
    return [r for r in runs if fnmatch.fnmatchcase(r.label, only)
            or fnmatch.fnmatchcase(r.run_id, only)]


def pending_runs(runs: Iterable[RunSpec], out_dir: str | Path) -> list[RunSpec]:
    """The runs without an ``"ok"`` record in ``out_dir``."""
    store = RunStore(out_dir)
    return [r for r in runs if not store.is_finished(r.run_id)]


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path,
    *,
    only: str | None = None,
    workers: int | None = None,
    dask: str | None = None,
    show_progress: bool | None = None,
) -> SuiteResult:
    """Run every pending run of ``config`` into ``out_dir`` and return what happened.

    ``workers > 1`` uses that many local processes (spawned, each with
    ``cpu_count // workers`` torch threads); ``dask="local"`` starts a Dask ``LocalCluster``
    (``workers`` processes, default 1), any other ``dask`` value is a scheduler address to join.
    With ``config.batch_seeds`` the pending seeds of each (dataset, model) are one task, trained
    as one batched model (:func:`~densitylab.suite.evaluate.execute_batched_runs`).
    """
    out = Path(out_dir)
    store = RunStore(out)
    start = time.perf_counter()
    if dask is None:  # fail once, now, not once per run (Dask workers decide for themselves)
        resolve_device(config.device)
    selected = select_runs(config.runs, only)
    if only and not selected:
        raise ValueError(f"only: pattern {only!r} matches no run; runs are named "
                         "'dataset/model/seed' (e.g. 'ring/vae/*') or by run id")
    todo = pending_runs(selected, out)
    result = SuiteResult(out, len(selected), skipped=[r.run_id for r in selected if r not in todo])
    store.write_suite({"name": config.name, "description": config.description,
                       "source": config.source, "device": config.device,
                       "seeds": list(config.seeds), "eval_samples": config.eval_samples,
                       "run_ids": [r.run_id for r in config.runs]})
    if result.skipped:
        logger.info("%d of %d run(s) already done in %s", len(result.skipped), len(selected), out)
    if todo:
        units = group_runs(todo) if config.batch_seeds else [[spec] for spec in todo]
        if dask is not None:
            stream = _run_dask(units, out, dask, workers)
        elif workers is not None and workers > 1:
            stream = _run_processes(units, out, workers)
        else:
            stream = (s for unit in units for s in execute_batched_runs(unit, out))
        for summary in _report_progress(stream, len(todo), show_progress):
            result.finished.append(summary)
    result.wall_s = time.perf_counter() - start
    return result


def group_runs(runs: Iterable[RunSpec]) -> list[list[RunSpec]]:
    """Runs that differ only in their seed, grouped (first-seen order); others alone."""
    groups: dict[str, list[RunSpec]] = {}
    units: list[list[RunSpec]] = []
    for spec in runs:
        key = batch_key(spec)
        if key is None:
            units.append([spec])
        elif key in groups:
            groups[key].append(spec)
        else:
            groups[key] = [spec]
            units.append(groups[key])
    return units


def _failed(unit: list[RunSpec], why: str) -> Iterator[dict[str, Any]]:
    for spec in unit:
        yield {"run_id": spec.run_id, "label": spec.label, "status": "failed", "wall_s": 0.0,
               "error": why}


def _report_progress(stream: Iterator[dict[str, Any]], total: int, enabled: bool | None):
    """A tqdm bar showing each run's status on a TTY, one log line per run otherwise."""
    tty = enabled if enabled is not None else (hasattr(sys.stderr, "isatty")
                                               and sys.stderr.isatty())
    if tty:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="suite", unit="run", dynamic_ncols=True) as bar:
            failed = 0
            for s in stream:
                failed += s["status"] != "ok"
                bar.set_postfix_str(f"{s['label']}: {s['status']} ({s['wall_s']:.1f}s)"
                                    + (f", {failed} failed" if failed else ""))
                bar.update(1)
                yield s
        return
    for i, s in enumerate(stream, start=1):
        logger.info("[%d/%d] %s %s %s in %.1f s%s", i, total, s["label"], s["run_id"],
                    s["status"], s["wall_s"], f": {s['error']}" if s["error"] else "")
        yield s


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_processes(units: list[list[RunSpec]], out: Path, workers: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Processes share the cores: give each its slice so they do not oversubscribe them.
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(execute_batched_runs, [s.to_dict() for s in unit], str(out)): unit
                   for unit in units}
        for fut in as_completed(futures):
            unit = futures[fut]
            try:
                yield from fut.result()
            except Exception as err:  # the worker itself died (e.g. out of memory)
                yield from _failed(unit, f"worker died: {type(err).__name__}: {err}")


def _run_dask(units: list[list[RunSpec]], out: Path, address: str, workers: int | None):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise ImportError(
            "--dask needs Dask distributed: pip install 'densitylab[distributed]'"
        ) from err

    cluster = None
    if address == "local":
        n = workers or 1
        threads = max(1, (os.cpu_count() or 1) // n)
        extra = {"env": {"OMP_NUM_THREADS": str(threads)}} if n > 1 else {}
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=n > 1,
                               dashboard_address=":0", **extra)
        client = Client(cluster)
    else:
        client = Client(address)
    logger.info("Dask: %d worker(s), dashboard %s", len(client.scheduler_info()["workers"]),
                client.dashboard_link)
    try:
        futures = [client.submit(execute_batched_runs, [s.to_dict() for s in unit], str(out),
                                 pure=False,
                                 key=f"densitylab-run-{unit[0].run_id}-{time.time_ns()}")
                   for unit in units]
        by_key = {f.key: unit for f, unit in zip(futures, units, strict=True)}
        for fut in as_completed(futures):
            unit = by_key[fut.key]
            try:
                yield from fut.result()
            except Exception as err:  # the worker was lost
                yield from _failed(unit, f"dask worker error: {type(err).__name__}: {err}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
