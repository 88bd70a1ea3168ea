"""Runs from configs: data + model -> trainer (or a measurement) -> run store.

The CLI's `attnlab train`, the sweeps and Python users go through the same functions, so the same
config and seed give the same numbers either way. `run_many` trains runs that differ only by seed
as one stacked computation (attnlab.train.stacking); each run's numbers equal those of `run`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch

from attnlab.config import RunConfig, TeacherDataConfig, parse_config
from attnlab.data import Dataset, build_data, build_teacher
from attnlab.data.teacher import LABEL_CHUNK, LABEL_MAX_ELEMENTS
from attnlab.models import Model, Params, build_model
from attnlab.numerics.precision import ieee_float32
from attnlab.recorder import Recorder
from attnlab.store import RunStore, identity, seedless_key
from attnlab.train import RESULTS_VERSION
from attnlab.train.projection import block_radii
from attnlab.train.recorders import build_recorders
from attnlab.train.memory import peak_memory_bytes, training_step_peak_memory
from attnlab.train.trainer import Trainer, TrainResult
from attnlab.versions import library_versions

DTYPES = {"float32": torch.float32, "float64": torch.float64}
GPU_STACK_SHARE = 0.5           # CUDA: share of the GPU's memory one stacked computation may take
CPU_STACK_BYTES = 4 * 2**20     # CPU: stack seeds while one run's activations stay this small


@dataclass
class Setup:
    """Everything a run needs before training: the model, its initial parameters and the data."""

    model: Model
    params0: Params
    data: Dataset


def open_store(root: str | Path) -> RunStore:
    """The run store at `root`, for results of this code (attnlab.train.RESULTS_VERSION)."""
    return RunStore(root, RESULTS_VERSION)


def run_id(config: RunConfig | Mapping[str, Any]) -> str:
    """The id of the run of `config` in any store of this code."""
    return identity.run_id(as_config(config), RESULTS_VERSION)


def as_config(config: RunConfig | Mapping[str, Any]) -> RunConfig:
    """`config` itself, or the RunConfig a mapping of its fields describes (ConfigError when invalid);
    TypeError naming the expected types for anything else."""
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    raise TypeError(f"expected a RunConfig or a mapping of its fields (as in a config file), "
                    f"not {type(config).__name__}")


def setup(config: RunConfig | Mapping[str, Any]) -> Setup:
    """Generate the data and initialise the model of `config` (on its device, in its dtype)."""
    config = as_config(config)
    _check_device(config.device)
    check_memory(config)
    dtype = DTYPES[config.dtype]
    data = build_data(config.data, config.seed, config.device).to(dtype=dtype, device=config.device)
    model = build_model(config.model, d=data.d, T=data.T, outputs=data.outputs)
    return Setup(model, model.init(config.seed, dtype=dtype, device=config.device), data)


def train(config: RunConfig | Mapping[str, Any], recorders: list[Recorder] | None = None,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run `config` in memory (nothing is written), with the recorders its diagnostics section asks
    for added to `recorders`."""
    return train_many([config], [recorders or []], progress)[0]


def train_many(configs: list[RunConfig | Mapping[str, Any]], recorders: list[list[Recorder]] | None = None,
               progress: Callable[[int, float], None] | None = None) -> list[TrainResult]:
    """Train configs (RunConfigs or mappings of their fields) that differ only by seed together, in
    memory; one result per config."""
    configs = [as_config(config) for config in configs]
    _check_same_but_seed(configs)
    setups = [setup(config) for config in configs]
    recorders = [[*(extra or []), *build_recorders(config.diagnostics, s.model, s.params0, s.data, config.train)]
                 for config, s, extra in zip(configs, setups, recorders or [None] * len(configs))]
    trainer = Trainer(setups[0].model, configs[0].train, progress=progress)
    results = trainer.fit_many([s.params0 for s in setups], [s.data for s in setups],
                               [config.seed for config in configs], recorders)
    for config, result in zip(configs, results):
        result.summary.update(run_id=run_id(config), versions=library_versions())
    return results


def measure(config: RunConfig | Mapping[str, Any]) -> dict:
    """The summary of a measurement task (approximation-error, linearisation-error, peak-memory)."""
    config = as_config(config)
    from attnlab.theory.kernel_regime import approximation_error, linearisation_error

    start = time.perf_counter()
    if config.task == "peak-memory":
        return {"task": config.task, **peak_memory(config), "wall_time_s": time.perf_counter() - start,
                "run_id": run_id(config), "versions": library_versions()}
    if config.model.name != "kernel-transformer" or config.data.name != "teacher":
        raise ValueError(f"task = {config.task!r}: needs model.name = 'kernel-transformer' and "
                         f"data.name = 'teacher' (got {config.model.name!r}, {config.data.name!r})")
    s = setup(config)
    X, y, teacher = build_teacher(config.data, config.seed)   # every sample (n, T, d), before the split
    if config.task == "approximation-error":
        value = approximation_error(teacher, X, y, s.model.width)
    else:
        radii = block_radii(s.model.radius_keys, config.train.radius.model_dump())
        if None in radii.values():
            raise ValueError(f"train.radius = {config.train.radius.model_dump()}: the linearisation-error "
                             "task needs a number for every block, not 'none'")
        value = linearisation_error(s.model, s.params0, X.to(dtype=DTYPES[config.dtype], device=config.device), radii)
    return {"task": config.task, config.task.replace("-", "_"): value,
            "wall_time_s": time.perf_counter() - start, "run_id": run_id(config),
            "versions": library_versions()}


def peak_memory(config: RunConfig) -> dict[str, int]:
    """Peak bytes that one forward pass (no autograd) and one training step (the trainer's loss and
    gradient) of the model at initialisation add, on the whole training set of `config`."""
    s = setup(config)
    X, y = s.data.X_train, s.data.y_train
    existing = [X, y, *s.params0.values()]

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return s.model(s.params0, X)
    loss = config.train.loss or s.model.default_loss
    return {"forward_bytes": peak_memory_bytes(forward, config.device, inputs=existing),
            "train_step_bytes": training_step_peak_memory(s.model, s.params0, X, y, loss),
            "batch": X.shape[0], "tokens": X.shape[1]}


def run(config: RunConfig | Mapping[str, Any], root: str | Path = "runs", force: bool = False,
        progress: Callable[[int, float], None] | None = None) -> Path:
    """Run `config` unless the store already holds it; return the run directory."""
    config = as_config(config)
    store = open_store(root)
    if store.is_complete(config) and not force:
        return store.path(config)
    if config.task != "train":
        return store.write(config, pd.DataFrame({"step": []}), measure(config), replace=force)
    result = train(config, progress=progress)
    return store.write(config, result.curves, result.summary, replace=force)


def run_many(configs: list[RunConfig | Mapping[str, Any]], root: str | Path = "runs", force: bool = False,
             memory_bytes: int | None = None,
             progress: Callable[[int, float], None] | None = None) -> list[Path]:
    """Run configs that differ only by seed; runs the store already holds are reused. Returns the
    run directories in order. Runs are trained stacked where that is faster (stack_size; on CUDA
    within `memory_bytes`, by default stack_memory_bytes)."""
    configs = [as_config(config) for config in configs]
    store = open_store(root)
    todo = [c for c in configs if force or not store.is_complete(c)]
    if todo and todo[0].task == "train":
        size = stack_size(todo[0], len(todo), memory_bytes)
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            for config, result in zip(chunk, train_many(chunk, progress=progress)):
                store.write(config, result.curves, result.summary, replace=force)
    else:
        for config in todo:
            run(config, root, force=force)
    return [store.path(config) for config in configs]


def stack_size(config: RunConfig, runs: int, memory_bytes: int | None = None) -> int:
    """How many seeds of `config` to train as one stacked computation.

    Measured by benchmarks/bench_seed_stacking.py on 2 CPU cores: stacking pays (1.5x) while one
    run's (n, T, width) activations stay cache-sized, and loses (0.4x-0.7x) beyond, where the
    stacked arrays only add memory traffic. On CUDA, stacking fills the device: as many runs as
    fit in `memory_bytes` (default stack_memory_bytes; 8 activation arrays per run), the runs then
    split into chunks of equal size (10 runs of which 8 fit: two chunks of 5, not 8 and 2)."""
    per_run = _activation_bytes(config)
    if config.device.startswith("cuda"):
        budget = stack_memory_bytes(config.device) if memory_bytes is None else memory_bytes
        most = max(1, min(runs, budget // (8 * per_run)))
        chunks = -(-runs // most)
        return -(-runs // chunks)
    return runs if per_run <= CPU_STACK_BYTES else 1


def stack_memory_bytes(device: str) -> int:
    """Memory one stacked computation may take on a CUDA device: GPU_STACK_SHARE of its memory
    (the rest holds the data, the iterates, the recorders' work and the allocator's slack)."""
    return int(GPU_STACK_SHARE * torch.cuda.get_device_properties(torch.device(device)).total_memory)


def _activation_bytes(config: RunConfig) -> int:
    """Bytes of one (n_train, T, width) activation array of a training run."""
    n_train = config.data.n_train or 1   # a whole recorded series: unknown before it is read
    return max(1, n_train * config.data.tokens * config.model.width * DTYPES[config.dtype].itemsize)


class RunTooLarge(ValueError):
    """A run whose estimated memory exceeds the machine; the message names the sizes."""


def estimated_bytes(config: RunConfig) -> int:
    """A lower estimate of the memory one run of `config` needs: its data (n, T, d) as generated (in
    float64) and in the run's dtype, the teacher's work (teacher data), 8 activation arrays (n_train,
    T, width) and the parameters (width x the token features). A mini-batch (projsgd, batch_size <=
    n_train) needs no more than the full batch."""
    data, width = config.data, config.model.width
    n, T, d = data.n_samples or 1, data.tokens, data.d
    itemsize = DTYPES[config.dtype].itemsize
    run = itemsize * (n * T * d + 8 * _activation_bytes(config) // itemsize + width * (T * d + d + 2))
    return 8 * n * T * d + _teacher_bytes(config) + run


def _teacher_bytes(config: RunConfig) -> int:
    """The teacher's draws (U (K, d), W (K, d, d) in float64 and in float32) and 4 intermediate
    (samples, T, draws) float32 arrays of its labels (Teacher.labels), for teacher data; else 0."""
    data = config.data
    if not isinstance(data, TeacherDataConfig):
        return 0
    draws = data.K * (data.d * data.d + data.d) * (8 + 4)
    chunk = min(LABEL_CHUNK, data.K)
    rows = data.n if data.n * data.T * chunk <= LABEL_MAX_ELEMENTS else max(1, LABEL_MAX_ELEMENTS // (data.T * chunk))
    return draws + 4 * 4 * rows * data.T * chunk


def check_memory(config: RunConfig) -> None:
    """Raise RunTooLarge when the run's estimate exceeds the memory of its device (the machine's
    RAM on the CPU, the GPU's memory on CUDA), before anything is allocated."""
    need = estimated_bytes(config)
    if config.device.startswith("cuda"):
        have, where = torch.cuda.get_device_properties(torch.device(config.device)).total_memory, "the GPU has"
    else:
        try:
            have, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine has"
        except (ValueError, OSError, AttributeError):   # pragma: no cover - not POSIX
            return
    if need > have:
        named = {**config.data.sizes(), "model width": config.model.width}
        sizes = ", ".join(f"{k} = {v}" for k, v in named.items() if v is not None)
        raise RunTooLarge(f"the run needs at least {need / 2**30:.3g} GiB ({sizes}), {where} "
                          f"{have / 2**30:.3g} GiB: reduce the sizes")


def _check_same_but_seed(configs: list[RunConfig]) -> None:
    if len({seedless_key(c) for c in configs}) > 1:
        raise ValueError("configs trained together must differ only by seed")


def _check_device(device: str) -> None:
    """Refuse CUDA where there is none; pin the precision policy (numerics/precision.py: no TF32)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device = {device!r}: CUDA is not available on this machine; use --device cpu")
    ieee_float32()
