"""One training run from one config: data + model -> trainer -> run store.

The CLI's `attnlab train` and Python users go through the same functions, so the same config and
seed give the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from attnlab.config import RunConfig
from attnlab.data import Dataset, build_data
from attnlab.models import Model, Params, build_model
from attnlab.sweep.store import RunStore, run_id
from attnlab.train.diagnostics import build_recorders
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
    model = build_model(config.model, d=data.d, T=data.T, outputs=data.outputs)
    return Setup(model, model.init(config.seed, dtype=dtype, device=config.device), data)


def train(config: RunConfig, recorders: list[Recorder] | None = None,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run `config` in memory (nothing is written), with the recorders its diagnostics section asks
    for added to `recorders`."""
    s = setup(config)
    recorders = [*(recorders or []), *build_recorders(config.diagnostics, s.model, s.params0, s.data)]
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


def curves(config: RunConfig, root: str | Path | None = None,
           force: bool = False) -> tuple[pd.DataFrame, dict]:
    """Per-step curves (one row per recorded step) and summary of `config`: trained in memory when
    `root` is None, else read from the run store under `root` (training first if it is missing)."""
    if root is None:
        result = train(config)
        return result.curves, result.summary
    run(config, root, force=force)
    store = RunStore(root)
    return store.curves(config), store.summary(config)


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device = {device!r}: CUDA is not available on this machine; use --device cpu")
