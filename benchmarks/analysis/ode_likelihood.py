"""The diffusion model's probability-flow ODE likelihoods of a results folder beside the
target's own log-density on the same held-out points, seed by seed.

For each finished run with a checked ODE (``log_likelihood``'s ``heldout_loglik_flagged``) it
prints and writes (``--out``, CSV) the flagged-point count, the mean, median and 1 %-trimmed mean
of the model's per-point log-density, and the same three statistics of the target's exact
log-density on the same held-out points (rebuilt from the run's config: the held-out draw
depends on the dataset, the seed and the number of points only, :meth:`EvalContext.heldout`),
so that each summary is compared with its own kind; and the DDPM variational bound.

    python benchmarks/analysis/ode_likelihood.py docs/toy2d-likelihood --out ode.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from densitylab.registry import make_dataset
from densitylab.results.store import RunStore
from densitylab.scoring.context import derive_seed, heldout_target, sample_points
from densitylab.scoring.likelihood import TRIM


def summaries(values: torch.Tensor) -> tuple[float, float, float]:
    """Mean, median and the mean after dropping ``TRIM`` of the values at each end, as the
    log_likelihood metric computes them."""
    m = values.numel()
    cut = int(TRIM * m)
    kept = values.sort().values[cut:m - cut] if m - 2 * cut > 0 else values
    return float(values.mean()), float(values.median()), float(kept.mean())


def target_summaries(record) -> tuple[float, float, float]:
    """:func:`summaries` of the target's log-density on the run's held-out points."""
    cfg = record.config
    target = make_dataset(cfg["dataset"]["name"], cfg["dataset"]["params"])
    params = next(m["params"] for m in cfg["metrics"] if m["name"] == "log_likelihood")
    n = params.get("num_samples") or cfg["eval_samples"]
    x = sample_points(heldout_target(target), n, derive_seed(record.seed, "heldout"))
    return summaries(torch.as_tensor(target.log_prob(x)).double())


def ode_table(folder: str | Path) -> pd.DataFrame:
    """:func:`ode_rows` of the folder's current records."""
    return ode_rows(RunStore(folder).current_records())


def ode_rows(records) -> pd.DataFrame:
    """One row per finished diffusion run whose log_likelihood carries a checked ODE."""
    rows = []
    for record in records:
        values = record.values("log_likelihood") if record.status == "ok" else {}
        if "heldout_loglik_flagged" not in values or record.model_kind != "diffusion":
            continue
        mean, median, trimmed = target_summaries(record)
        rows.append({"dataset": record.dataset, "model": record.model, "seed": record.seed,
                     "flagged": int(values["heldout_loglik_flagged"]),
                     "model_mean": values["heldout_loglik"],
                     "model_median": values["heldout_loglik_median"],
                     "model_trimmed": values["heldout_loglik_trimmed"],
                     "target_mean": mean, "target_median": median, "target_trimmed": trimmed,
                     "recorded_target_mean": values.get("target_loglik"),
                     "ddpm_bound": values.get("heldout_elbo")})
    if not rows:
        return pd.DataFrame(rows)
    return pd.DataFrame(rows).sort_values(["dataset", "model", "seed"], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--out", help="write the table as CSV here")
    args = parser.parse_args(argv)
    table = ode_table(args.folder)
    if table.empty:
        print(f"{args.folder}: no finished run with a checked ODE likelihood", file=sys.stderr)
        return 1
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
