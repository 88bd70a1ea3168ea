"""One training run from one config: data + model -> trainer -> run store.

The CLI's `attnlab train` and Python users go through the same functions, so the same config and
seed give the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from attnlab.config import RunConfig
from attnlab.data import Dataset, build_data
from attnlab.models import Model, Params, build_model
from attnlab.sweep.store import RunStore, run_id
from attnlab.train.trainer import Recorder, Trainer, TrainResult
from attnlab.versions import library_versions

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Setup:
    """Everything a run needs before training: the model, its initial parameters and the data."""

    model: Model
    params0: Params
    data: Dataset


def setup(config: RunConfig) -> Setup:
    """Generate the data and initialise the model of `config` (on its device, in its dtype)."""
    _check_device(config.device)
    dtype = DTYPES[config.dtype]
    data = build_data(config.data, config.seed).to(dtype=dtype, device=config.device)
    model = build_model(config.model, d=data.d)
    return Setup(model, model.init(config.seed, dtype=dtype, device=config.device), data)


def train(config: RunConfig, recorders: list[Recorder] | None = None,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run `config` in memory (nothing is written)."""
    s = setup(config)
    trainer = Trainer(s.model, config.train, seed=config.seed, recorders=recorders, progress=progress)
    result = trainer.fit(s.params0, s.data)
    result.summary.update(run_id=run_id(config), versions=library_versions())
    return result


def run(config: RunConfig, root: str | Path = "runs", force: bool = False,
        progress: Callable[[int, float], None] | None = None) -> Path:
    """Train `config` unless the store already holds it; return the run directory."""
    store = RunStore(root)
    if store.is_complete(config) and not force:
        return store.path(config)
    result = train(config, progress=progress)
    return store.write(config, result.curves, result.summary)


def run_many(configs: list[RunConfig], root: str | Path = "runs") -> list[Path]:
    """Train configs that differ only by seed (skipping finished ones); return their run directories.

    This is the single seam for seed batching: every sweep executor hands each group of seed-only
    variants to this function (through attnlab.sweep.tasks.run_batch). The body is the sequential
    loop until a batched trainer replaces it; it must keep this signature, skip runs already in the
    store and write each finished run with RunStore.write. If it raises, the sweep reruns the group's
    unfinished configs one at a time with `run`, so only the run that fails is recorded as failed.
    """
    return [run(config, root) for config in configs]


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device = {device!r}: CUDA is not available on this machine; use --device cpu")
