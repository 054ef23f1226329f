"""The trainer: one code path that fits a model for one seed or a batched model for S seeds.

As in Pyro's ``SVI`` the loop lives outside the model. A model holds its parameters and its
objectives, and writes its training step once against an engine (``model._step(engine)``, see
:mod:`densitylab.models.train`); :class:`Trainer` owns everything a fit builds and nothing of it
stays on the model: the data streams (:func:`~densitylab.models.data.iter_batches`), the noise
generators, the engine with its optimisers and the objectives built for the fit (the VAE's ELBO
loss), the learning-rate schedules, the histories, checkpoints, and the handling of divergence
and Ctrl-C.

* A single model (``models.GAN``, ...) trains on a
  :class:`~densitylab.models.train.SingleEngine` (S = 1): batches from its stream, noise from
  the global RNG, forked and seeded for the fit. A non-finite loss raises
  :class:`densitylab.TrainingDiverged` before the update that would apply it.
* A batched model (``models.BatchedGAN``, ...; a model with a ``single_class``) trains on a
  :class:`~densitylab.models.train.StackedEngine` (S seeds as one computation): slice ``s``
  draws its batches and noise from its own streams, seeded as the single fit with seed
  ``seeds[s]`` seeds them. A slice whose loss turns non-finite is frozen; the others train on.

Either way the result is one :class:`History` per seed, also left on the model
(``model.history``, or ``batched.histories`` and ``batched.divergences``), and Ctrl-C is
re-raised after leaving the model usable (eval mode, histories marked ``interrupted``).

Example:
    >>> from densitylab import distributions, models
    >>> from densitylab.models.trainer import Trainer
    >>> trainer = Trainer(steps=5, batch_size=32, seeds=[0], progress=False)
    >>> gan = models.GAN(data_dim=2, hidden=(8,), seed=0)
    >>> [h.steps for h in trainer.fit(gan, distributions.ring())]
    [5]
    >>> gans = models.BatchedGAN(seeds=[0, 1], data_dim=2, hidden=(8,))
    >>> trainer = Trainer(steps=5, batch_size=32, progress=False)  # seeds: gans.seeds
    >>> [h.steps for h in trainer.fit(gans, distributions.ring())]
    [5, 5]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._errors import TrainingDiverged
from .._runtime import make_generator, torch_threads
from .._validation import check_int
from .data import iter_batches
from .train import NonFinite, SingleEngine, StackedEngine, check_fit_args, lr_schedulers, run_steps

__all__ = ["History", "Trainer", "check_seeds"]

#: ``callback(step, losses, model)``; a true result stops the fit.
Callback = Callable[[int, dict[str, Any], Any], Any]


@dataclass
class History:
    """Per-step training losses of one ``fit`` call.

    ``losses[name][i]`` is loss ``name`` at step ``i`` (0-based). ``interrupted`` is True when
    Ctrl-C stopped training; ``diverged`` when a non-finite loss did; ``stopped_early`` when the
    callback asked to stop. ``seconds`` is the wall time of the loop.
    """

    losses: dict[str, list[float]] = field(default_factory=dict)
    interrupted: bool = False
    diverged: bool = False
    stopped_early: bool = False
    seconds: float = 0.0

    def append(self, step_losses: dict[str, float]) -> None:
        """Record the losses of one step."""
        for key, value in step_losses.items():
            self.losses.setdefault(key, []).append(value)

    @property
    def steps(self) -> int:
        """Number of completed steps."""
        return max((len(v) for v in self.losses.values()), default=0)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, key: str) -> list[float]:
        return self.losses[key]

    def mean(self, key: str, first: int | None = None, last: int | None = None) -> float:
        """Mean of loss ``key`` over its ``first`` or ``last`` k steps (all steps by default)."""
        values = self.losses[key]
        if first is not None:
            values = values[:first]
        elif last is not None:
            values = values[-last:]
        return math.fsum(values) / max(len(values), 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the history."""
        return {
            "losses": {k: list(v) for k, v in self.losses.items()},
            "steps": self.steps,
            "interrupted": self.interrupted,
            "diverged": self.diverged,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
        }


def check_seeds(seeds, num_seeds: int | None = None) -> tuple[int, ...]:
    """Exactly one of ``seeds`` (distinct non-negative ints) and ``num_seeds`` (seeds
    ``0..S-1``), as a tuple of seeds."""
    if (seeds is None) == (num_seeds is None):
        raise ValueError("give exactly one of num_seeds (seeds 0..S-1) and seeds (a list of ints)")
    if seeds is None:
        return tuple(range(check_int(num_seeds, "num_seeds", minimum=1)))
    if isinstance(seeds, int | str) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a sequence of non-negative ints, got {seeds!r}")
    out = tuple(check_int(s, "seeds entry", minimum=0) for s in seeds)
    if not out:
        raise ValueError("seeds must hold at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct (equal seeds give identical runs), got {out}")
    return out


def is_batched(model) -> bool:
    """True for a batched model (S seeds stacked; it names its ``single_class``)."""
    return hasattr(model, "single_class")


class Trainer:
    """Training settings, and :meth:`fit`, which applies them to a model or a batched model.

    Arguments:
        steps: number of training steps (for a GAN: generator steps).
        batch_size: rows per step (per seed).
        lr: learning rate (None: the model's ``default_lr``).
        lr_schedule: ``"constant"`` or ``"cosine"`` (``lr * (1 + cos(pi t / steps)) / 2`` at
            step t; Loshchilov and Hutter, ICLR 2017, without restarts), a
            ``torch.optim.lr_scheduler.LambdaLR``.
        train_size: with a distribution as ``data``, a fixed training set of this many points
            drawn once per seed (seeded from the seed) and iterated in shuffled epochs; None:
            fresh batches each step.
        seeds: the training seed of each of the S seeds: an int or one seed for a single
            model (None: drawn from the global RNG); S seeds for a batched model (None: its
            initialisation seeds).
        device: ``"cpu"``, ``"cuda[:i]"``, ``"auto"`` or None (train where the model is).
        callback: ``callback(step, losses, model)`` after each step; returning True stops. The
            losses are floats for a single model and ``(S,)`` tensors for a batched one.
        progress: True/False forces the progress display; None: a bar on a TTY.
        checkpoint_every, checkpoint_path: save a single model atomically every so many steps
            (weights and config, not the optimiser state).
        num_threads: torch CPU threads during training (None: leave torch's setting).
    """

    def __init__(self, steps: int = 1000, batch_size: int = 256, lr: float | None = None, *,
                 lr_schedule: str = "constant", train_size: int | None = None,
                 seeds: int | Sequence[int] | None = None, device=None,
                 callback: Callback | None = None, progress: bool | None = None,
                 checkpoint_every: int | None = None, checkpoint_path: str | Path | None = None,
                 num_threads: int | None = None):
        self.steps, self.batch_size, self.lr, self.num_threads = check_fit_args(
            steps, batch_size, lr, num_threads, lr_schedule, default_lr=None)
        self.lr_schedule = lr_schedule
        self.train_size = train_size
        if seeds is not None and (isinstance(seeds, str) or not isinstance(seeds, Sequence)):
            seeds = (check_int(seeds, "seed", minimum=0),)  # one seed
        self.seeds = None if seeds is None else check_seeds(seeds)
        if checkpoint_every is not None:
            checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1)
            if checkpoint_path is None:
                raise ValueError("checkpoint_every needs checkpoint_path")
        self.checkpoint_every, self.checkpoint_path = checkpoint_every, checkpoint_path
        self.device, self.callback, self.progress = device, callback, progress

    def fit(self, model, data) -> list[History]:
        """Train ``model`` on ``data``; return one :class:`History` per seed.

        ``model`` is a single model (S = 1) or a batched model (S seeds); ``data`` an array or
        tensor ``(n, *data_shape)`` or a distribution with ``.sample(n, seed)``.

        Raises:
            densitylab.TrainingDiverged: a single model met a non-finite loss; it keeps the
                weights of its last finite step.
            KeyboardInterrupt: re-raised after leaving the model usable.
        """
        batched = is_batched(model)
        template = model._template if batched else model
        seeds = self._seeds_for(model, batched)
        if self.checkpoint_every and batched:
            raise ValueError("checkpoints save a single model; fit the seeds one at a time, or "
                             "save batched.unstack() after the fit")
        template._check_training(self.batch_size)
        lr = template.default_lr if self.lr is None else self.lr
        if self.device is not None:
            model.to(self.device)
        if batched:
            template = model._synced_template()
        if seeds is None:  # one draw from the caller's stream
            seeds = (int(torch.randint(0, 2**31 - 1, (1,))),)
        dev, dtype = model.device, model._dtype()
        # The batched streams draw on the CPU (as a distribution samples) and move once, stacked.
        stream_device = torch.device("cpu") if batched else dev
        streams = [iter_batches(data, self.batch_size, model.data_shape, device=stream_device,
                                dtype=dtype, seed=seed + 1, train_size=self.train_size,
                                fixed_packs=template._fixed_packs())
                   for seed in seeds]
        histories = [History() for _ in seeds]
        if batched:
            model.histories = histories
        else:
            model.history = histories[0]
        record = _LossRecord(histories, live=not batched, steps=self.steps)
        desc = (f"batched {template.name} x{len(seeds)} fit" if batched
                else f"{template.name} fit")
        fork_devices = [dev] if dev.type == "cuda" else []
        start = time.perf_counter()
        with torch.random.fork_rng(devices=fork_devices), torch_threads(self.num_threads), \
                template._training_context():
            torch.manual_seed(seeds[0])  # the single engine's noise comes from the global RNG
            if batched:
                engine = StackedEngine(template, model.networks, lr, self.batch_size, streams,
                                       [make_generator(seed, dev) for seed in seeds])
                model.divergences = engine.divergences
            else:
                engine = SingleEngine(model, lr, self.batch_size, streams[0])
            schedulers = lr_schedulers(engine.optimizers.values(), self.lr_schedule, self.steps)

            def step_fn(step: int) -> dict[str, Any]:
                engine.step = step
                losses = template._step(engine)
                record.add(losses)
                return losses

            def after_step(step: int, losses: dict[str, Any]) -> bool:
                if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0:
                    model.save(self.checkpoint_path)
                if self.callback is not None and self.callback(step, losses, model):
                    for h in histories:
                        h.stopped_early = True
                    return True
                return all(d is not None for d in engine.divergences)

            model.train()
            template.train()
            try:
                run_steps(step_fn, self.steps, desc=desc, progress=self.progress,
                          schedulers=schedulers, after_step=after_step)
            except NonFinite as err:
                histories[0].diverged = True
                raise TrainingDiverged(engine.step, err.loss) from None
            except KeyboardInterrupt:
                for h in histories:
                    h.interrupted = True
                raise
            finally:
                model.eval()
                template.eval()
                record.write(engine.divergences, time.perf_counter() - start)
        return histories

    def _seeds_for(self, model, batched: bool) -> tuple[int, ...] | None:
        """The training seeds of ``model``'s S seeds (None: one, to be drawn)."""
        if not batched:
            if self.seeds is not None and len(self.seeds) != 1:
                raise ValueError(f"a single model trains one seed, got seeds={list(self.seeds)}; "
                                 "train several with a batched model (models.BatchedGAN, ...)")
            return self.seeds
        if self.seeds is None:
            return tuple(model.seeds)
        if len(self.seeds) != model.num_seeds:
            raise ValueError(f"seeds must hold {model.num_seeds} seeds (one per slice), "
                             f"got {len(self.seeds)}")
        return self.seeds


class _LossRecord:
    """The losses of each step into the histories: a single engine's floats as they come, a
    stacked engine's ``(S,)`` tensors written into one ``(steps, S)`` table per loss on the
    device and read back once at the end (no device sync per step), each slice's history cut at
    the step where it diverged.

    The table is allocated once: keeping a small tensor per step instead interleaves thousands
    of long-lived allocations with each step's large temporary ones, and glibc's allocator then
    cannot give freed memory back (``benchmarks/perf/batched_memory.py``: a 40-seed ring GAN fit
    grew to 6.2 GB resident in 2,500 steps that way, and stays under 0.5 GB with the table).
    """

    def __init__(self, histories: list[History], *, live: bool, steps: int):
        self.histories, self.live, self.steps = histories, live, steps
        self.columns: dict[str, torch.Tensor] = {}
        self.rows = 0

    def add(self, losses: dict[str, Any]) -> None:
        if self.live:
            self.histories[0].append(losses)
            return
        for key, value in losses.items():
            value = value.detach()
            if key not in self.columns:
                self.columns[key] = torch.full((self.steps, *value.shape), float("nan"),
                                               dtype=value.dtype, device=value.device)
            self.columns[key][self.rows] = value
        self.rows += 1

    def write(self, divergences: Sequence[dict[str, float] | None], seconds: float) -> None:
        table = {k: v[:self.rows].cpu().tolist() for k, v in self.columns.items()}
        for i, history in enumerate(self.histories):
            history.seconds = seconds
            if self.live:
                continue
            div = divergences[i]
            history.diverged = history.diverged or div is not None
            for key, rows in table.items():
                stop = len(rows) if div is None else div["step"]
                history.losses[key] = [row[i] for row in rows[:stop]]
