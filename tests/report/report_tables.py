"""Synthetic tables for the report tests."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import yaml

from attnlab.config import config_to_dict, parse_config
from attnlab.run import run_id
from attnlab.store import CONFIG, CURVES, SUMMARY


def power_rows(rng: np.random.Generator, alpha: float, widths=(8, 16, 32, 64, 128), seeds: int = 4,
               sigma: float = 0.2, **extra) -> list[dict]:
    """Rows m, seed, error with error = 2 m^alpha exp(sigma N(0,1))."""
    return [{"m": m, "seed": s, **extra, "error": 2 * m ** alpha * math.exp(sigma * rng.standard_normal())}
            for m in widths for s in range(seeds)]


def write_runs(root, widths=(4, 8, 16), seeds=(0, 1, 2), Ts=(8,)) -> None:
    """Run directories as the store writes them, with losses ~ m^-1 (no training)."""
    rng = np.random.default_rng(0)
    for m in widths:
        for T in Ts:
            for seed in seeds:
                config = parse_config({"model": {"name": "kernel-transformer", "m": m},
                                       "data": {"name": "teacher", "T": T, "n": 100}, "seed": seed})
                loss = 1.0 / m * math.exp(0.1 * rng.standard_normal())
                it = {"train_loss": loss, "val_loss": 1.2 * loss}
                run_dir = root / run_id(config)
                run_dir.mkdir(parents=True)
                (run_dir / CONFIG).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
                pd.DataFrame({"step": [0, 10], "train_loss": [1.0, loss]}).to_parquet(run_dir / CURVES)
                (run_dir / SUMMARY).write_text(json.dumps(
                    {"last": it, "best": {**it, "step": 10}, "average": it, "wall_time_s": 0.1,
                     "diverged_at": None, "versions": {"torch": "x"}}))
