"""The two engines that run a model's training step, for one seed or many, and the loop.

A model writes its training step once, against an *engine* (:class:`Engine`)::

    def _step(self, eng):
        real = eng.batch()                            # next data batch
        z = eng.normal(eng.batch_size, self.latent_dim)   # noise, drawn outside the objective
        d_loss = eng.update("discriminator", "d_objective", real, z)
        ...

``eng.update(group, objective, *inputs)`` evaluates the model method ``objective(*inputs)`` (a
scalar loss of explicit tensors: no random draws inside), backpropagates it, checks that loss
and gradients are finite and applies the optimiser of parameter group ``group``
(``model._param_groups()`` names the groups, ``model._make_optimizer`` builds their optimisers).
``eng.update_each(groups, objective, *inputs)`` is the simultaneous form (ALI's
``ali_algorithm``, Dumoulin et al., ICLR 2017): the objective returns one loss per group from
one forward pass, each group's gradient is taken of its own loss, every loss and gradient is
checked, and then every group's optimiser steps. ``eng.no_grad_call(name, *inputs)`` runs a
model method without gradients (a pass that only moves batch-norm population statistics), and
``eng.step`` is the 0-based index of the step being run.

* :class:`SingleEngine` runs the step on the model itself: batches from the fit's stream, noise
  from the global RNG that the trainer forks and seeds, and a non-finite loss raises before any
  update (the trainer turns it into :class:`densitylab.TrainingDiverged`).
* :class:`StackedEngine` runs the same step for S seeds at once (``models.BatchedGAN`` ...): the
  model's parameters and buffers (batch-norm running statistics included) are stacked along a
  new leading dimension, each objective is evaluated per seed by
  ``torch.vmap(torch.func.functional_call(...))`` of the *single* model's own method, and one
  optimiser per group updates the stacked tensors. Data batches and noise are drawn outside
  vmap, slice ``s`` from its own streams seeded as ``fit(seed=seeds[s])`` seeds them, so on CPU
  slice ``s`` reproduces the separate fit up to floating-point rounding. Adam is elementwise, so
  one Adam over the stacked tensors is S independent Adams. A seed whose loss or gradient turns
  non-finite is frozen at its last finite parameters while the others train on.

An objective is a model method, or a callable the model builds for one fit
(``model._fit_objectives(lr, batch_size)``), which the engine keeps: the VAE's Pyro ELBO loss,
scaled by the batch size. :class:`densitylab.models.trainer.Trainer` builds the engine and runs
:func:`run_steps`, the loop: steps, ``torch.optim.lr_scheduler`` schedules
(:data:`LR_SCHEDULES`) and the progress display.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import nn
from torch.func import functional_call

from .._runtime import LR_SCHEDULES
from .._runtime import progress as _progress
from .._validation import check_choice, check_int, check_positive

__all__ = ["LR_SCHEDULES", "Engine", "SingleEngine", "StackedEngine", "NonFinite", "vmap_call",
           "check_fit_args", "check_finite_step", "lr_schedulers", "cosine_factor", "run_steps"]


class NonFinite(Exception):
    """A training step met a non-finite loss or gradient before updating anything."""

    def __init__(self, loss: float):
        super().__init__(loss)
        self.loss = loss


def check_fit_args(steps, batch_size, lr, num_threads, lr_schedule, *,
                   default_lr: float) -> tuple[int, int, float, int | None]:
    """Check the ``fit`` arguments single and batched models share.

    Returns ``(steps, batch_size, lr, num_threads)``, with ``lr`` defaulting to ``default_lr``.
    """
    steps = check_int(steps, "steps", minimum=1)  # as suites: a fit trains
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = default_lr if lr is None else check_positive(lr, "lr")
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads", minimum=1)
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    return steps, batch_size, lr, num_threads


def check_finite_step(loss: torch.Tensor | float, params: Iterable[torch.Tensor]) -> float:
    """Return ``float(loss)``; raise :class:`NonFinite` if the loss or any gradient is NaN/inf.

    The gradient check is one fused reduction (``0 * sum`` is NaN exactly when a sum is not
    finite), so it costs a single device sync together with the loss.
    """
    params = list(params)
    loss_t = torch.as_tensor(loss).detach()
    grads = [p.grad.sum() for p in params if p.grad is not None]
    if grads:
        probe = loss_t.detach().to(grads[0].device) + 0.0 * torch.stack(grads).sum()
    else:
        probe = loss_t.detach()
    value = float(probe)
    if not math.isfinite(value):
        for p in params:
            p.grad = None
        raise NonFinite(float(loss_t))
    return float(loss_t)


def cosine_factor(step: int, steps: int) -> float:
    """``(1 + cos(pi step / steps)) / 2``: the cosine schedule's factor on the base rate."""
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


def lr_schedulers(optimizers: Iterable[torch.optim.Optimizer], schedule: str,
                  steps: int) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """``torch.optim.lr_scheduler`` schedules for ``optimizers``; step them after each step.

    ``"cosine"`` is a ``LambdaLR`` with :func:`cosine_factor`, so step t uses
    ``lr * (1 + cos(pi t / steps)) / 2`` (the full rate at step 0); ``"constant"`` needs none.
    """
    check_choice(schedule, "lr_schedule", LR_SCHEDULES)
    if schedule == "constant":
        return []
    return [torch.optim.lr_scheduler.LambdaLR(opt, lambda t: cosine_factor(t, steps))
            for opt in optimizers]


class Engine(Protocol):
    """What a model's ``_step`` may ask of the engine running it (see the module docstring)."""

    batch_size: int
    step: int

    def batch(self) -> torch.Tensor: ...

    def normal(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor: ...

    def uniform(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor: ...

    def update(self, group: str, objective: str, *inputs: torch.Tensor | None) -> Any: ...

    def update_each(self, groups: Sequence[str], objective: str,
                    *inputs: torch.Tensor | None) -> tuple[Any, ...]: ...

    def no_grad_call(self, name: str, *inputs: torch.Tensor | None) -> Any: ...


def _group_params(model) -> dict[str, list[nn.Parameter]]:
    return {g: list(m.parameters()) for g, m in model._param_groups().items()}


class SingleEngine:
    """Runs a model's ``_step`` on the model itself (one seed).

    Arguments:
        model: the model; its methods are the objectives, its parameters those trained.
        lr, batch_size: as for ``fit``.
        batches: the fit's stream of data batches.

    The objectives the model builds for a fit (``model._fit_objectives(lr, batch_size)``, such
    as the VAE's ELBO loss scaled by the batch size) are kept here, not on the model.
    """

    def __init__(self, model, lr: float, batch_size: int,
                 batches: Iterator[torch.Tensor] | None = None):
        self.model = model
        self.batch_size = batch_size
        self.params = _group_params(model)
        self.optimizers = {g: model._make_optimizer(g, ps, lr) for g, ps in self.params.items()}
        self.objectives = model._fit_objectives(lr, batch_size)
        self.batches = batches
        self._all = [p for ps in self.params.values() for p in ps]
        self.step = 0  # set by the trainer before each step
        self.divergences: list[dict[str, float] | None] = [None]  # it raises NonFinite instead

    def _objective(self, name: str) -> Callable[..., Any]:
        """The objective built for this fit under ``name``, else the model's method."""
        built = self.objectives.get(name)
        return getattr(self.model, name) if built is None else built

    def batch(self) -> torch.Tensor:
        return next(self.batches)

    def normal(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.randn(*shape, device=self.model.device, dtype=dtype or self.model._dtype())

    def uniform(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.rand(*shape, device=self.model.device, dtype=dtype or self.model._dtype())

    def update(self, group: str, objective: str, *inputs) -> float:
        loss = self._objective(objective)(*inputs)
        for p in self._all:
            p.grad = None
        loss.backward()
        value = check_finite_step(loss, self.params[group])
        self.optimizers[group].step()
        for p in self._all:  # gradients that reached other groups are not kept
            p.grad = None
        return value

    def update_each(self, groups: Sequence[str], objective: str, *inputs) -> tuple[float, ...]:
        """Simultaneous update: ``objective`` returns one loss per group; group ``g`` steps on
        the gradient of its own loss w.r.t. its own parameters, all taken from one forward pass
        before any optimiser moves (raises :class:`NonFinite` before any update)."""
        losses = self._objective(objective)(*inputs)
        for p in self._all:
            p.grad = None
        try:
            values = []
            for group, loss in zip(groups, losses, strict=True):
                _set_grads(loss, self.params[group])
                values.append(check_finite_step(loss, self.params[group]))
            for group in groups:
                self.optimizers[group].step()
        finally:
            for p in self._all:
                p.grad = None
        return tuple(values)

    def no_grad_call(self, name: str, *inputs) -> Any:
        """``model.name(*inputs)`` without gradients (in the mode fit left it: training)."""
        with torch.no_grad():
            return getattr(self.model, name)(*inputs)


def _set_grads(loss: torch.Tensor, params: list[nn.Parameter]) -> None:
    """``p.grad = d loss / d p`` for ``params`` only (the graph is kept for the other losses)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g


class _Objective(nn.Module):
    """``forward(name, *inputs) = model.name(*inputs)``, with the model's networks as the only
    submodule: what ``functional_call`` reparametrises to evaluate an objective per seed."""

    def __init__(self, model):
        super().__init__()
        self.networks = model.networks
        object.__setattr__(self, "_model", model)  # not a submodule: no duplicate names

    def forward(self, name: str, *inputs):
        return getattr(self._model, name)(*inputs)


def stacked_state(stacked: nn.Module) -> dict[str, torch.Tensor]:
    """The stacked parameters and buffers under the names ``functional_call`` expects on an
    :class:`_Objective` (``networks.<name>``)."""
    out = {f"networks.{k}": v for k, v in stacked.named_parameters()}
    out.update({f"networks.{k}": v for k, v in stacked.named_buffers()})
    return out


def vmap_call(template, stacked: nn.Module, name: str, *inputs,
              state: dict[str, torch.Tensor] | None = None,
              call: nn.Module | None = None) -> Any:
    """``template.name(*inputs)`` evaluated per seed on the stacked state: inputs and outputs
    carry the leading seed dimension (None inputs are passed to every seed as None).

    A method the model lists in ``_vmap_objectives`` is evaluated through its vmappable
    equivalent (the VAE reads its ELBO from Pyro traces under vmap). ``state`` (that is,
    ``stacked_state(stacked)``) and ``call`` (an ``_Objective`` of the template) may be passed
    by a caller that keeps them. The networks tie no weights, so ``functional_call`` is told so
    (it then skips a search of the module tree on every call)."""
    name = getattr(template, "_vmap_objectives", {}).get(name, name)
    call = _Objective(template) if call is None else call
    in_dims = (0, *(None if x is None else 0 for x in inputs))
    state = stacked_state(stacked) if state is None else state
    return torch.vmap(lambda st, *xs: functional_call(call, st, (name, *xs), tie_weights=False),
                      in_dims=in_dims, randomness="error")(state, *inputs)


class StackedEngine:
    """Runs a model's ``_step`` for S seeds at once (see the module docstring).

    Arguments:
        template: a single model; its methods are the objectives, its networks the layout.
        stacked: an ``nn.ModuleDict`` with the template's networks' structure whose parameters
            and buffers carry a leading seed dimension S (trained in place).
        lr, batch_size: as for ``fit``.
        streams: one batch iterator per seed; gens: one noise generator per seed.
    """

    def __init__(self, template, stacked: nn.ModuleDict, lr: float, batch_size: int,
                 streams: Sequence[Iterator[torch.Tensor]],
                 gens: Sequence[torch.Generator | None]):
        self.template = template
        self.stacked = stacked
        self.batch_size = batch_size
        self.streams = list(streams)
        self.gens = list(gens)
        self.num_seeds = len(self.streams)
        # group of each template parameter, by name; the stacked tensors of the same names
        names = {id(p): n for n, p in template.networks.named_parameters()}
        stacked_params = dict(stacked.named_parameters())
        self.params = {g: [stacked_params[names[id(p)]] for p in m.parameters()]
                       for g, m in template._param_groups().items()}
        self.optimizers = {g: template._make_optimizer(g, ps, lr)
                           for g, ps in self.params.items()}
        self._all = [p for ps in self.params.values() for p in ps]
        self._buffers = [b for b in stacked.buffers() if b.is_floating_point()]
        first = self._all[0]
        self.device, self.dtype = first.device, first.dtype
        self.active = torch.ones(self.num_seeds, dtype=torch.bool, device=self.device)
        self._state = stacked_state(stacked)  # the same tensors all fit long (updated in place)
        self._call = _Objective(template)
        self.divergences: list[dict[str, float] | None] = [None] * self.num_seeds
        self.step = 0

    # ------------------------------------------------------------------ inputs, per seed
    def batch(self) -> torch.Tensor:
        return torch.stack([next(b) for b in self.streams]).to(self.device)

    def normal(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.dtype
        return torch.stack([torch.randn(*shape, generator=g, device=self.device, dtype=dtype)
                            for g in self.gens])

    def uniform(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.dtype
        return torch.stack([torch.rand(*shape, generator=g, device=self.device, dtype=dtype)
                            for g in self.gens])

    # ------------------------------------------------------------------ evaluation
    def call(self, name: str, *inputs) -> Any:
        """``template.name(*inputs)`` per seed (see :func:`vmap_call`)."""
        return vmap_call(self.template, self.stacked, name, *inputs, state=self._state,
                         call=self._call)

    def _call_keeping_frozen(self, name: str, *inputs) -> Any:
        """:meth:`call`, with the buffers (running statistics) of frozen seeds restored after."""
        frozen = ~self.active
        held = None
        if self._buffers and bool(frozen.any()):  # frozen seeds keep their running statistics
            held = [b.detach().clone() for b in self._buffers]
        out = self.call(name, *inputs)
        if held is not None:
            with torch.no_grad():
                for b, old in zip(self._buffers, held, strict=True):
                    m = frozen.view(-1, *([1] * (b.ndim - 1)))
                    b.copy_(torch.where(m, old, b))
        return out

    def update(self, group: str, objective: str, *inputs) -> torch.Tensor:
        losses = self._call_keeping_frozen(objective, *inputs)
        for p in self._all:
            p.grad = None
        losses.sum().backward()  # slice s of each gradient is dL_s / d theta_s
        self._guarded_steps([(losses, self.params[group], self.optimizers[group])])
        for p in self._all:
            p.grad = None
        return losses.detach()

    def update_each(self, groups: Sequence[str], objective: str,
                    *inputs) -> tuple[torch.Tensor, ...]:
        """Simultaneous update of every slice (see :meth:`SingleEngine.update_each`): a slice
        steps only when all its losses and gradients are finite; otherwise it is frozen."""
        losses = self._call_keeping_frozen(objective, *inputs)
        for p in self._all:
            p.grad = None
        items = []
        for group, loss in zip(groups, losses, strict=True):
            _set_grads(loss.sum(), self.params[group])  # slice s: dL_s / d theta_s
            items.append((loss, self.params[group], self.optimizers[group]))
        self._guarded_steps(items)
        for p in self._all:
            p.grad = None
        return tuple(loss.detach() for loss in losses)

    def no_grad_call(self, name: str, *inputs) -> Any:
        """``template.name(*inputs)`` per seed without gradients; frozen seeds keep their
        buffers."""
        with torch.no_grad():
            return self._call_keeping_frozen(name, *inputs)

    def _guarded_steps(self, items: Sequence[tuple[torch.Tensor, list[nn.Parameter],
                                                   torch.optim.Optimizer]]) -> None:
        """Apply each ``(loss, params, optimizer)`` to the slices whose losses and gradients
        (of every item) are finite; freeze the others.

        One device sync per call (a single model's ``fit`` also reads its loss every step). A
        slice found non-finite is recorded in :attr:`divergences` and stays frozen.
        """
        s = self.num_seeds
        probes = []
        for loss, params, _ in items:
            grads = [p.grad.reshape(s, -1) for p in params if p.grad is not None]
            probe = loss.detach()
            if grads:  # 0 * sum is NaN exactly when a gradient entry is not finite
                probe = probe + 0.0 * torch.cat(grads, dim=1).sum(dim=1)
            probes.append(probe)
        finite = torch.stack([torch.isfinite(p) for p in probes]).all(dim=0)
        newly = self.active & ~finite
        if bool(newly.any()):  # the one device sync of this update
            for i in newly.nonzero().flatten().tolist():
                bad = next(k for k, p in enumerate(probes) if not bool(torch.isfinite(p[i])))
                self.divergences[i] = {"step": self.step,
                                       "loss": float(items[bad][0][i].detach())}
            self.active &= ~newly
        if all(d is None for d in self.divergences):
            for _, _, optimizer in items:
                optimizer.step()
            return
        # Frozen slices get zero gradients, and the update Adam's moments would still make is
        # undone, so they keep exactly their last finite parameters (buffers are restored too).
        for _, params, optimizer in items:
            masks = [self.active.view(s, *([1] * (p.ndim - 1))) for p in params]
            for p, m in zip(params, masks, strict=True):
                if p.grad is not None:
                    p.grad = torch.where(m, p.grad, torch.zeros_like(p.grad))
            before = [p.detach().clone() for p in params]
            optimizer.step()
            with torch.no_grad():
                for p, m, b in zip(params, masks, before, strict=True):
                    p.copy_(torch.where(m, p, b))


def run_steps(step_fn: Callable[[int], dict[str, Any]], steps: int, *, desc: str,
              progress: bool | None, schedulers: Sequence[Any] = (),
              after_step: Callable[[int, dict[str, Any]], bool] | None = None) -> None:
    """The training loop: ``steps`` calls of ``step_fn(step)``, schedules stepped after each.

    ``after_step(step, losses)`` returning True stops the loop. Exceptions (divergence, Ctrl-C)
    propagate to the caller, which records them.
    """
    for step in _progress(range(steps), total=steps, desc=desc, enabled=progress):
        losses = step_fn(step)
        for scheduler in schedulers:
            scheduler.step()
        if after_step is not None and after_step(step, losses):
            break
