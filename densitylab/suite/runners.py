"""Run the pending runs of a suite: in this process, in local worker processes, or on Dask.

Runners only schedule the units of the plan stage (:func:`densitylab.suite.plan.plan_work`),
handing each as plain data to :func:`densitylab.suite.evaluate.execute_batched_runs`, which
writes its own records: workers share no state, and the folder on disk is the only truth about
what is done. Rerunning a suite skips finished runs and retries the failed ones.

Ctrl-C, and SIGTERM (``kill PID``, a batch scheduler) sent to the suite's process, start no new
run. The sequential runner stops inside the current run; local worker processes (which ignore
SIGINT) are terminated, their runs computed again on resume, so the command returns within
seconds; on Dask, tasks are cancelled and a local cluster shut down (a run already executing on
a remote worker finishes and writes its record). Every record written before the interrupt is
reported, with :attr:`SuiteResult.interrupted` and :attr:`SuiteResult.signal` set.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._runtime import logger, raise_terminated, resolve_device, signal_handled, stderr_is_tty
from ..results.store import RunStore
from .config import RunSpec, SuiteConfig
from .evaluate import execute_batched_runs
from .plan import (
    FolderInUseError,
    Work,
    check_code,
    claim_folder,
    group_runs,
    pending_runs,
    plan_work,
    select_runs,
    tensorboard_available,
)

__all__ = ["SuiteResult", "FolderInUseError", "run_suite", "claim_folder", "check_code",
           "select_runs", "pending_runs", "group_runs", "tensorboard_available"]


@dataclass
class SuiteResult:
    """What one invocation of :func:`run_suite` did."""

    out_dir: Path
    total: int
    skipped: list[str] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    #: True when the invocation was interrupted (Ctrl-C or SIGTERM); ``finished`` holds every
    #: record written before it.
    interrupted: bool = False
    #: The signal that interrupted it (``signal.SIGINT`` or ``signal.SIGTERM``), else None.
    signal: int | None = None
    #: Where stale records were moved (``force=True``), else None.
    moved_to: Path | None = None
    #: Finished runs computed by other code, kept with ``force=True`` (see :func:`check_code`).
    other_code: list[str] = field(default_factory=list)

    @property
    def ok(self) -> list[dict[str, Any]]:
        """Summaries of the runs that finished in this invocation."""
        return [r for r in self.finished if r["status"] == "ok"]

    @property
    def diverged(self) -> list[dict[str, Any]]:
        """Summaries of the runs whose training diverged (a failure; not retried)."""
        return [r for r in self.finished if r["status"] == "diverged"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Summaries of the runs that did not finish "ok" (failed or diverged)."""
        return [r for r in self.finished if r["status"] != "ok"]

    def summary(self) -> str:
        """A few lines for the terminal: counts, failures and where the results are."""
        errors = [r for r in self.failed if r["status"] != "diverged"]
        lines = [
            f"{self.total} run(s) selected: {len(self.skipped)} already done, "
            f"{len(self.ok)} finished, {len(errors)} failed"
            + (f", {len(self.diverged)} diverged" if self.diverged else "")
            + f" in {self.wall_s:.1f} s",
        ]
        for r in self.failed:
            lines.append(f"  {r['status'].upper()} {r['label']} ({r['run_id']}): {r['error']}")
        if self.other_code:
            lines.append(f"  {len(self.other_code)} finished run(s) computed by other code were "
                         "kept (--force); the report lists which runs came from which code")
        if errors:
            lines.append("  failed runs are retried when the same command is run again")
        if self.diverged:
            lines.append("  diverged runs are failures of the configuration (not retried, not "
                         "averaged into the report's means): lower the learning rate")
        lines.append(f"results in {self.out_dir / 'runs'}")
        return "\n".join(lines)


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path,
    *,
    only: str | None = None,
    workers: int | None = None,
    dask: str | None = None,
    show_progress: bool | None = None,
    force: bool = False,
) -> SuiteResult:
    """Run every pending run of ``config`` into ``out_dir`` and return what happened.

    ``workers > 1`` uses that many local processes (spawned, each with
    ``cpu_count // workers`` torch threads); ``dask="local"`` starts a Dask ``LocalCluster``
    (``workers`` processes, default 1), any other ``dask`` value is a scheduler address to join.
    ``force`` moves the records of another configuration aside (see :func:`claim_folder`) and
    keeps the finished runs of other code (see :func:`check_code`). A KeyboardInterrupt stops
    the suite (see the module docstring) and is not re-raised: ``interrupted`` is set.

    Raises:
        FolderInUseError: ``out_dir`` belongs to another configuration, or holds runs of other
            code while runs are to be computed, and ``force`` is False.
        ImportError: ``tensorboard = true`` without TensorBoard installed.
    """
    out = Path(out_dir)
    store = RunStore(out)
    start = time.perf_counter()
    if dask is None:  # fail once, now, not once per run (Dask workers decide for themselves)
        resolve_device(config.device)
    if config.tensorboard:
        tensorboard_available()
    work = plan_work(config, store, only=only, force=force)
    result = SuiteResult(out, len(work.selected), skipped=work.skipped, moved_to=work.moved_to,
                         other_code=work.other_code)
    if work.units:
        if dask is not None:
            stream = _run_dask(work.units, out, dask, workers)
        elif workers is not None and workers > 1:
            stream = _run_processes(work.units, out, workers)
        else:
            stream = (s for unit in work.units for s in execute_batched_runs(unit, out))
        try:
            with signal_handled(signal.SIGTERM, raise_terminated):
                for summary in _report_progress(stream, len(work.todo), show_progress):
                    result.finished.append(summary)
        except KeyboardInterrupt as err:
            result.interrupted = True
            result.signal = getattr(err, "signum", signal.SIGINT)  # set by Terminated
            _collect_written(result, work, store)
    result.wall_s = time.perf_counter() - start
    return result


def _collect_written(result: SuiteResult, work: Work, store: RunStore) -> None:
    """After an interrupt: add (and log) every record written in this invocation that the
    progress stream had not reported yet (a worker may finish just as the interrupt arrives)."""
    seen = {s["run_id"] for s in result.finished}
    for spec in work.todo:
        if spec.run_id in seen:
            continue
        rec = store.load_record(spec.run_id)
        if rec is None or rec.finished_at == work.written_before.get(spec.run_id):
            continue
        summary = rec.summary()
        logger.info("%s %s %s in %.1f s (written before the interrupt)", summary["label"],
                    summary["run_id"], summary["status"], summary["wall_s"])
        result.finished.append(summary)


def _drain(futures, as_completed, unit_of, lost: str) -> Iterator[dict[str, Any]]:
    """Each unit's summaries as its future completes; every run of a unit whose worker was lost
    (``lost`` says which) is reported failed."""
    for fut in as_completed(futures):
        try:
            yield from fut.result()
        except Exception as err:  # the worker itself died (e.g. out of memory)
            why = f"{lost}: {type(err).__name__}: {err}"
            yield from ({"run_id": s.run_id, "label": s.label, "status": "failed",
                         "wall_s": 0.0, "error": why} for s in unit_of(fut))


def _threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` local processes: they share the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def _report_progress(stream: Iterator[dict[str, Any]], total: int, enabled: bool | None):
    """A tqdm bar showing each run's status on a TTY, one log line per run otherwise."""
    if enabled if enabled is not None else stderr_is_tty():
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

    # Ctrl-C reaches every process of the terminal's group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _run_processes(units: list[list[RunSpec]], out: Path, workers: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(_threads_per_worker(workers),))
    futures: dict = {}
    try:
        with signal_handled(signal.SIGINT, signal.SIG_IGN):
            futures = {pool.submit(execute_batched_runs, [s.to_dict() for s in unit], str(out)):
                       unit for unit in units}
        yield from _drain(futures, as_completed, futures.get, "worker died")
    except BaseException:  # Ctrl-C (or the consumer stopped): start nothing, stop what runs
        for fut in futures:
            fut.cancel()
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
        extra = {"env": {"OMP_NUM_THREADS": str(_threads_per_worker(n))}} if n > 1 else {}
        # its worker processes leave Ctrl-C to this process
        with signal_handled(signal.SIGINT, signal.SIG_IGN):
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
        try:
            yield from _drain(futures, as_completed, lambda f: by_key[f.key], "dask worker error")
        except BaseException:  # Ctrl-C: cancel what is queued or running, start nothing new
            client.cancel(futures, force=True)
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
