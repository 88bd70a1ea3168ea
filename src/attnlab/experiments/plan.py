"""`attnlab reproduce ... --dry-run`: the runs a reproduction would do and reuse, and its wall time.

The estimate comes from probes, not from a table of constants: the setup (data generation included)
and a few steps of the largest and the smallest training run to do fit a per-step cost a + b * size, where size is the run's n_train * T * width; every other training run is placed on
that line. A measurement task (approximation or linearisation error, peak memory) is timed once on
its largest run. Runs share `workers` processes, so the wall time is the total divided by them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from attnlab.config import RunConfig
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import open_store

PROBE_STEPS = (2, 12)


@dataclass
class ExperimentPlan:
    """The runs of one experiment: to do and to reuse, and the estimated seconds of those to do."""

    key: str
    todo: list[RunConfig]
    reused: int
    seconds: float = 0.0
    probes: list[str] = field(default_factory=list)


def run_size(config: RunConfig) -> int:
    """n_train * T * width: what one training step's cost grows with."""
    data = config.data
    n_train = round(getattr(data, "n", 1) * (1 - getattr(data, "val_fraction", 0.0)))
    tokens = getattr(data, "T", None) or getattr(data, "L", 0) + 1
    width = getattr(config.model, "m", None) or getattr(config.model, "d_m", 1)
    return max(1, n_train * tokens * width)


def _train_seconds(config: RunConfig, steps: int) -> float:
    """Seconds of `steps` steps of `config`, recording at the interval of the full run."""
    from attnlab.run import train

    short = config.train.model_copy(update={"steps": steps, "record_every": config.train.record_interval})
    start = time.perf_counter()
    train(config.model_copy(update={"train": short}))
    return time.perf_counter() - start


def _probe(config: RunConfig) -> tuple[float, float]:
    """(setup seconds, seconds per step) of one training run: the setup on a seed not seen before
    (data generation included), the step from two short runs after a warm-up."""
    from attnlab.run import setup

    start = time.perf_counter()
    setup(config.model_copy(update={"seed": config.seed + 7919}))
    fixed = time.perf_counter() - start
    _train_seconds(config, 1)
    short, long = (_train_seconds(config, steps) for steps in PROBE_STEPS)
    return fixed, max(0.0, (long - short) / (PROBE_STEPS[1] - PROBE_STEPS[0]))


def estimate(todo: list[RunConfig]) -> tuple[float, list[str]]:
    """Estimated seconds of running `todo` one after another, and a line per probe."""
    trained = [c for c in todo if c.task == "train"]
    measured = [c for c in todo if c.task != "train"]
    seconds, lines = 0.0, []
    if trained:
        smallest, largest = min(trained, key=run_size), max(trained, key=run_size)
        (fixed_small, step_small), (fixed_big, step_big) = _probe(smallest), _probe(largest)
        span = run_size(largest) - run_size(smallest)
        slope = (step_big - step_small) / span if span else 0.0
        for config in trained:
            per_step = step_small + slope * (run_size(config) - run_size(smallest))
            seconds += max(fixed_small, fixed_big) + config.train.steps * per_step
        for config, fixed, per_step in ((smallest, fixed_small, step_small), (largest, fixed_big, step_big)):
            lines.append(f"probe {_label(config)}: {per_step * 1e3:.1f} ms/step, {fixed:.1f} s setup")
    if measured:
        from attnlab.run import measure

        largest = max(measured, key=run_size)
        start = time.perf_counter()
        measure(largest)
        each = time.perf_counter() - start
        seconds += each * len(measured)
        lines.append(f"probe {_label(largest)}: {each:.1f} s per measurement")
    return seconds, lines


def _label(config: RunConfig) -> str:
    width = getattr(config.model, "m", None) or getattr(config.model, "d_m", None)
    return f"{config.model.name} width {width}, n {getattr(config.data, 'n', '?')}, T {getattr(config.data, 'T', '?')}"


def plan(paper: str, experiments: list[str] | None, preset: str, out: str | Path = "results",
         device: str | None = None, probe: bool = True) -> list[ExperimentPlan]:
    """The plan of `attnlab reproduce PAPER` with these arguments; nothing is written."""
    declared = experiment_file(paper)
    store = open_store(Path(out) / "runs")
    plans = []
    for key in experiments or list(declared.experiments):
        configs = [c for cs in experiment_configs(key, declared.experiments[key], preset, device).values() for c in cs]
        todo = [c for c in configs if not store.is_complete(c)]
        item = ExperimentPlan(key, todo, len(configs) - len(todo))
        if probe and todo:
            item.seconds, item.probes = estimate(todo)
        plans.append(item)
    return plans


def describe(paper: str, preset: str, plans: list[ExperimentPlan], workers: int) -> list[str]:
    """The printed plan: per experiment the runs to do and reuse, the probes, and the wall time."""
    lines = [f"{paper} ({preset} preset): plan"]
    for item in plans:
        steps = sum(c.train.steps for c in item.todo if c.task == "train")
        lines.append(f"  {item.key}: {len(item.todo)} runs to do ({steps} training steps), {item.reused} to reuse, "
                     f"about {_duration(item.seconds / max(1, workers))}")
        lines += [f"      {line}" for line in item.probes]
    total = sum(item.seconds for item in plans)
    lines.append(f"  estimated wall time: {_duration(total / max(1, workers))} on {max(1, workers)} worker(s) "
                 f"({_duration(total)} of run time)")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
