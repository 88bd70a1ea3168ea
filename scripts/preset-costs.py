"""The dry run's estimate beside the measured cost of each paper-preset experiment shipped in docs/paper/,
as a Markdown table: runs, the run time the dry run estimates for all of them (probed now, on this
machine, one thread per run), and the measured run time (the sum of the runs' wall_time_s in the
shipped per-run table, or in the packed run directories of a preset still under way).

    python scripts/preset-costs.py [--threads 1]

The estimate counts a teacher's labels once per data section and seed, as the runs share them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from attnlab.experiments.plan import Calibration, label_work, run_work
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import run_id

ROOT = Path(__file__).resolve().parent.parent


def measured(folder: Path) -> dict[str, float]:
    """Wall seconds by run id of an experiment's shipped table (or packed runs, while under way)."""
    if (folder / "results.csv").exists():
        table = pd.read_csv(folder / "results.csv")
        return dict(zip(table["run_id"], table["wall_time_s"].astype(float)))
    return {p.parent.name: float(json.loads(p.read_text())["wall_time_s"])
            for p in (folder / "runs").glob("*/summary.json")}


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calibration = Calibration()
    print("| Experiment | runs | dry-run estimate (run time) | measured (run time) | measured / estimate |")
    print("|---|---|---|---|---|")
    for paper_dir in sorted((ROOT / "docs" / "paper").iterdir()):
        experiments = experiment_file(paper_dir.name).experiments
        for key in [f.name for f in sorted(paper_dir.iterdir()) if f.is_dir() and measured(f)]:
            walls = measured(paper_dir / key)
            configs = [c for cs in experiment_configs(key, experiments[key], "paper").values() for c in cs]
            done = [c for c in configs if run_id(c) in walls]
            if not done:   # runs made on a GPU (W5): the CPU's cost model does not apply
                continue
            estimate = sum(calibration.seconds(run_work(c), c) for c in done)
            for config in {(c.data, c.seed): c for c in done}.values():        # labels: once per data and seed
                labels = label_work(config)
                estimate += calibration.seconds(labels, config) if labels is not None else 0.0
            seconds = sum(walls[run_id(c)] for c in done)
            share = "" if len(done) == len(configs) else f" of {len(configs)}"
            print(f"| {key} | {len(done)}{share} | {duration(estimate)} | {duration(seconds)} | "
                  f"{seconds / estimate:.2f} |")


if __name__ == "__main__":
    main()
