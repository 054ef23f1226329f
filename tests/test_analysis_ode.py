"""The ODE likelihood analysis (benchmarks/analysis/ode_likelihood.py): its summaries against
numpy and scipy, and the target's statistics on the very held-out points the log_likelihood
metric scores (EvalContext.heldout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _scripts import benchmark_script
from scipy import stats as scipy_stats

from densitylab import distributions
from densitylab.results.records import RunRecord
from densitylab.scoring.context import EvalContext


def _script():
    return benchmark_script("ode_likelihood")


def test_summaries_are_the_mean_median_and_one_percent_trimmed_mean():
    values = torch.as_tensor(np.random.default_rng(0).standard_cauchy(501))
    mean, median, trimmed = _script().summaries(values)
    assert mean == pytest.approx(values.mean().item())
    assert median == pytest.approx(np.median(values.numpy()))
    assert trimmed == pytest.approx(scipy_stats.trim_mean(values.numpy(), 0.01))


def _record(run_id, kind, seed, status="ok", flagged=2.0):
    ring = {"name": "ring", "params": {"n_modes": 8, "radius": 1.0, "std": 0.01}}
    values = {"heldout_loglik": 3.0, "heldout_loglik_median": 4.0,
              "heldout_loglik_trimmed": 3.5, "target_loglik": 4.3, "heldout_elbo": 3.9}
    if flagged is not None:
        values["heldout_loglik_flagged"] = flagged
    return RunRecord.of({
        "run_id": run_id, "dataset": "ring", "model": kind, "seed": seed, "status": status,
        "config": {"dataset": {"label": "ring", **ring}, "model": {"kind": kind},
                   "eval_samples": 300,
                   "metrics": [{"name": "log_likelihood", "params": {"num_samples": 0}}]},
        "metrics": {"log_likelihood": {"values": values}}})


def test_rows_hold_finished_checked_diffusion_runs_with_the_targets_statistics():
    records = [_record("a", "diffusion", 3), _record("b", "flow", 3, flagged=None),
               _record("c", "diffusion", 4, status="failed"),
               _record("d", "diffusion", 1, flagged=None)]
    table = _script().ode_rows(records)
    assert table["seed"].tolist() == [3] and table["flagged"].tolist() == [2]
    ring = distributions.ring()
    ctx = EvalContext(ring, None, torch.zeros(1, 2), torch.zeros(1, 2), 3, 300,
                      torch.device("cpu"))
    logp = ring.log_prob(ctx.heldout(300)).double().numpy()
    row = table.iloc[0]
    assert row["target_mean"] == pytest.approx(logp.mean())
    # torch's median of an even count is the lower middle value, as the metric's own
    assert row["target_median"] == pytest.approx(np.sort(logp)[(len(logp) - 1) // 2])
    assert row["target_trimmed"] == pytest.approx(scipy_stats.trim_mean(logp, 0.01))
