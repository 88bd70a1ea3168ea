"""One training step at each paper preset's largest shape, seeds stacked as `attnlab reproduce` stacks
them: E3 m = 256, E4 L = 96, E5 T = 1024, E7 L = 255, W5 d_m = 2048 (every series whose cost differs).

For each case the paper preset's runs at the largest x are set up (data and initialisation, timed
once: `setup_s`), then trained through the Trainer as train_many does (recorders included) for K and
K + N steps after a warm-up; a step costs the difference over N. Writes one CSV row per case with
the device's name, torch's version and the date, and an upper estimate of the largest x's share of
the preset: steps (training plus the reference's most) times chunks of stacked seeds.

    python benchmarks/bench_gpu.py --device cuda --out timings.csv [--cases E5 W5] [--steps 10]
    python benchmarks/bench_gpu.py --device cpu --n-max 40 --steps 2      # a CPU stand-in
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import sys
import time
from pathlib import Path

import torch

from attnlab.config import parse_config, config_to_dict
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import setup, stack_size
from attnlab.train.recorders import build_recorders
from attnlab.train.trainer import Trainer

CASES = {   # case: (paper, experiment, series whose step costs differ; None: the only series)
    "E3": ("arda2026", "E3", [None]),
    "E4": ("arda2026", "E4", ["transformer", "indrnn"]),
    "E5": ("arda2026", "E5", [None]),
    "E7": ("arda2026", "E7", ["transformer", "indrnn g=1.5"]),
    "W5": ("wu2023", "W5", ["sqrt"]),
}
COLUMNS = ["case", "series", "x", "x_value", "n_train", "tokens", "width", "seeds", "stacked", "device",
           "device_name", "torch", "date", "setup_s", "step_ms", "step_ms_per_run", "steps_per_run",
           "largest_x_upper_s", "peak_gib"]


def largest_runs(case: str, device: str, n_max: int | None) -> list[tuple[str, str, list]]:
    """(series, x, configs of every seed at the largest x) of each costed series of `case`."""
    paper, key, wanted = CASES[case]
    experiment = experiment_file(paper).experiments[key]
    series = experiment_configs(key, experiment, "paper", device)
    picked = []
    for name in wanted:
        configs = series[next(iter(series))] if name is None else series[name]
        value = max(_field(c, experiment.x) for c in configs)
        at_largest = [_shrunk(c, n_max) for c in configs if _field(c, experiment.x) == value]
        picked.append((name or "-", experiment.x, at_largest))
    return picked


def _field(config, dotted: str):
    section, _, name = dotted.partition(".")
    return getattr(getattr(config, section), name)


def _shrunk(config, n_max: int | None):
    """`config` with at most n_max samples (a stand-in on a small machine); unchanged for None."""
    if n_max is None or config.data.n is None or config.data.n <= n_max:
        return config
    raw = config_to_dict(config)
    raw["data"]["n"] = n_max
    return parse_config(raw)


def fit(configs: list, setups: list, steps: int) -> None:
    """Train the stacked runs `steps` steps as train_many does (recorders and all), reference off."""
    first = configs[0].train.model_copy(update={"steps": steps, "reference": None})
    recorders = [build_recorders(c.diagnostics, s.model, s.params0, s.data, c.train) for c, s in zip(configs, setups)]
    Trainer(setups[0].model, first).fit_many([s.params0 for s in setups], [s.data for s in setups],
                                             [c.seed for c in configs], recorders)


def time_case(case: str, series: str, x: str, configs: list, steps: int, warmup: int) -> dict:
    """One CSV row: setup and per-step time of the runs at the largest x, stacked as run_many stacks them."""
    config = configs[0]
    S = stack_size(config, len(configs))
    chunk = configs[:S]
    cuda = config.device.startswith("cuda")
    start = time.perf_counter()
    setups = [setup(c) for c in chunk]
    setup_s = time.perf_counter() - start
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fit(chunk, setups, warmup)                                   # warm-up: kernels, allocator
    start = time.perf_counter()
    fit(chunk, setups, warmup)
    short = time.perf_counter() - start
    start = time.perf_counter()
    fit(chunk, setups, warmup + steps)
    step_s = max(0.0, time.perf_counter() - start - short) / steps
    reference = config.train.reference.max_steps if config.train.reference is not None else 0
    steps_per_run = config.train.steps + reference
    data = setups[0].data
    return {"case": case, "series": series, "x": x, "x_value": _field(config, x),
            "n_train": data.X_train.shape[0], "tokens": data.X_train.shape[1], "width": config.model.width,
            "seeds": len(configs), "stacked": S, "device": config.device,
            "device_name": torch.cuda.get_device_name(config.device) if cuda else "cpu",
            "torch": torch.__version__, "date": datetime.date.today().isoformat(),
            "setup_s": round(setup_s, 3), "step_ms": round(1e3 * step_s, 3),
            "step_ms_per_run": round(1e3 * step_s / S, 3), "steps_per_run": steps_per_run,
            "largest_x_upper_s": round(step_s * steps_per_run * math.ceil(len(configs) / S) + setup_s, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=10, help="timed steps (difference of two fits)")
    parser.add_argument("--warmup", type=int, default=2, help="steps of the warm-up and the shorter fit")
    parser.add_argument("--n-max", type=int, default=None, help="cap the sample count (CPU stand-in)")
    parser.add_argument("--out", type=Path, default=Path("timings.csv"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for case in args.cases:
            for series, x, configs in largest_runs(case, args.device, args.n_max):
                try:
                    row = time_case(case, series, x, configs, args.steps, args.warmup)
                except Exception as error:   # noqa: BLE001 - record it, time the other cases
                    failed += 1
                    print(f"{case} {series}: FAILED {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                    continue
                finally:
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                writer.writerow(row)
                handle.flush()
                print(f"{case} {series} {x}={row['x_value']}: {row['stacked']}/{row['seeds']} seeds stacked, "
                      f"setup {row['setup_s']} s, {row['step_ms']} ms per step "
                      f"({row['step_ms_per_run']} ms per run), largest x <= {row['largest_x_upper_s']} s",
                      flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
