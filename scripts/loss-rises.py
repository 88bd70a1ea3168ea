"""Count, run by run, the gradient-descent steps at which the training loss rose: a full-batch GD
step below its stability threshold (step size < 2 / sharpness) never raises the loss, so rises mark
a run that left that regime (a period-2 oscillation at the edge of stability, for example). Reads
the full per-step curves of an experiment preset's finished runs in a run store (packed runs, whose
curves are thinned, cannot answer) and writes one row per run:

    python scripts/loss-rises.py arda2026 E4 paper results/runs docs/paper/arda2026/E4/loss_rises.csv

Columns: series, the experiment's x, seed, steps (recorded steps), rises (steps k whose training
loss exceeds that of step k - 1 by more than --tolerance relative, default 1e-6, well above the
float32 rounding of a mean loss), first_rise (the first such k, empty when none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import open_store


def rises(curves: pd.DataFrame, tolerance: float) -> tuple[int, int | None]:
    """(number of steps whose training loss exceeds the previous step's by more than `tolerance`
    relative, the first of them or None)."""
    ordered = curves.sort_values("step")
    loss = ordered["train_loss"].to_numpy()
    up = np.flatnonzero(loss[1:] > loss[:-1] * (1 + tolerance)) + 1
    return len(up), (int(ordered["step"].iloc[up[0]]) if len(up) else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper")
    parser.add_argument("experiment")
    parser.add_argument("preset")
    parser.add_argument("store", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-6, help="relative rise that counts")
    args = parser.parse_args()
    experiment = experiment_file(args.paper).experiments[args.experiment]
    x_section, x_name = experiment.x.split(".")
    store, rows = open_store(args.store), []
    for series, configs in experiment_configs(args.experiment, experiment, args.preset).items():
        for config in configs:
            if not store.is_complete(config):
                continue
            curves = store.curves(config)
            if curves["step"].diff().dropna().gt(1).any():
                print(f"error: the curves of run {store.run_id(config)} skip steps (packed by pack-runs.py, or "
                      "recorded every few steps); loss rises need every step's training loss", file=sys.stderr)
                sys.exit(2)
            count, first = rises(curves, args.tolerance)
            rows.append({"series": series, experiment.x: getattr(getattr(config, x_section), x_name),
                         "seed": config.seed, "steps": len(curves), "rises": count, "first_rise": first})
    if not rows:
        print(f"error: {args.store} holds no finished run of {args.paper} {args.experiment} ({args.preset})",
              file=sys.stderr)
        sys.exit(2)
    table = pd.DataFrame(rows).sort_values(["series", experiment.x, "seed"]).astype({"first_rise": "Int64"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    summary = table.groupby(["series", experiment.x])["rises"].agg(runs="size", with_rises=lambda r: int((r > 0).sum()))
    print(summary.to_string())


if __name__ == "__main__":
    main()
