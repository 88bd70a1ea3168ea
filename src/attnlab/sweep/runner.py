"""Run a list of configs through an executor and gather every run into one results table.

Policy (what a rerun of the same sweep does):
- a run whose directory is in the store is reused, never rerun;
- a run recorded as failed (ROOT/.failed/<run_id>.json) is skipped and stays "failed" in the table,
  unless `retry_failed=True`, which attempts it again (a success removes the record);
- every other run is executed, once: a run is locked before it is trained (sweep/locks.py), so
  two drivers of one store share the work; a run another driver holds is waited for at the end.
  A driver killed midway loses only the runs in flight: finished runs
  are whole in the store (atomic writes), so the rerun executes exactly what is missing.

The table is always built from the store (RunStore.table), so it is the same whichever executor ran
the runs, and the same on a rerun that executes nothing. The sweep does not know how a run is
computed: `work` (attnlab.run.run_many) is handed in by the caller.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnlab.config import RunConfig
from attnlab.store import RunStore, atomic_write, seedless_key
from attnlab.sweep.executors import Executor, make_executor, split_tasks
from attnlab.sweep.progress import sweep_progress
from attnlab.sweep.tasks import LOCKED, Work, wait_for_locked


class StoreNotWritable(OSError):
    """The run store cannot be written; the message names it."""


def check_writable(root: Path) -> None:
    """Raise StoreNotWritable (naming `root`) unless runs can be written under `root`."""
    if root.exists() and not root.is_dir():
        raise StoreNotWritable(f"run store {str(root)!r} is not a directory (a file is there): "
                               "choose a writable directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as error:
        raise StoreNotWritable(f"run store {str(root)!r} is not writable "
                               f"({error.strerror or error}): choose a writable directory") from None


@dataclass
class Triage:
    """What a sweep would do now: `run` (to execute), `reuse` (finished), `failed` (skipped)."""

    run: list[RunConfig] = field(default_factory=list)
    reuse: list[RunConfig] = field(default_factory=list)
    failed: list[RunConfig] = field(default_factory=list)


def triage(configs: list[RunConfig], store: RunStore, retry_failed: bool = False) -> Triage:
    """Sort configs into to-run / reused / previously-failed (skipped unless retry_failed).

    A config listed twice is planned once.
    """
    result = Triage()
    for config in _unique(configs, store):
        if store.is_complete(config):
            result.reuse.append(config)
        elif store.failures.has(config) and not retry_failed:
            result.failed.append(config)
        else:
            result.run.append(config)
    return result


def group_by_seed(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """Group configs that differ only by seed (first-appearance order); each group is one batch."""
    groups: dict[str, list[RunConfig]] = {}
    for config in configs:
        groups.setdefault(seedless_key(config), []).append(config)
    return list(groups.values())


def run_sweep(configs: list[RunConfig], store: RunStore, work: Work, executor: str | Executor = "local",
              workers: int | None = None, retry_failed: bool = False, progress: bool = True,
              **executor_options: Any) -> pd.DataFrame:
    """Execute what is missing from `store` through `work`, then return store.table(configs).

    `work(configs, root)` runs configs that differ only by seed into the store at root
    (attnlab.run.run_many). `executor` is "local", "dask" or "slurm" (or an Executor instance);
    `executor_options` go to make_executor, which gives each executor its own (dask: scheduler=...;
    slurm: partition=..., time_min=..., mem_gb=..., array_parallelism=..., cluster=...).
    """
    store = RunStore(Path(store.root).resolve(), store.results_version)
    todo = triage(configs, store, retry_failed).run
    if todo:
        check_writable(store.root)
        store.clean_stale()
        engine = (make_executor(executor, store.root, workers=workers, **executor_options)
                  if isinstance(executor, str) else executor)
        tasks = split_tasks(group_by_seed(todo), engine.parallelism)
        try:
            with sweep_progress(len(todo), enabled=progress) as advance:
                locked = []
                for outcomes in engine.map(tasks, store, work):
                    advance(outcomes)
                    locked += [o.run_id for o in outcomes if o.status == LOCKED]
                by_id = {store.run_id(config): config for config in todo}
                for key in locked:   # runs another driver was training when this one reached them
                    advance([wait_for_locked(by_id[key], store, work)])
        finally:
            if isinstance(executor, str):
                engine.close()
    return store.table(configs)


def write_table(table: pd.DataFrame, path: str | Path) -> tuple[Path, Path]:
    """Write `table` as Parquet at `path` and as CSV beside it (same stem), each atomically.

    Columns mixing numbers and strings (e.g. a radius of 3.0 or "none") are stored as strings in
    the Parquet file, which needs one type per column.
    """
    parquet = Path(path).with_suffix(".parquet")
    csv = parquet.with_suffix(".csv")
    parquet.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(parquet, lambda tmp: _parquet_safe(table).to_parquet(tmp, index=False))
    atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    return parquet, csv


def _parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            kinds = {type(v) for v in table[column] if v is not None and not _is_nan(v)}
            if len(kinds) > 1 and not kinds <= {int, float}:
                table[column] = table[column].map(lambda v: None if v is None or _is_nan(v) else str(v))
    return table


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _unique(configs: list[RunConfig], store: RunStore) -> list[RunConfig]:
    unique: dict[str, RunConfig] = {}
    for config in configs:
        unique.setdefault(store.run_id(config), config)
    return list(unique.values())
