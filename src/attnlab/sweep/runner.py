"""Run a list of configs through an executor and gather every run into one results table.

Policy (what a rerun of the same sweep does):
- a run whose directory is in the store is reused, never rerun;
- a run recorded as failed (ROOT/.failed/<run_id>.json) is skipped and stays "failed" in the table,
  unless `retry_failed=True`, which attempts it again (a success removes the record);
- every other run is executed, once: a run is claimed before it is trained (sweep/claims.py), so
  two drivers of one store share the work; a run another driver holds is waited for at the end.
  A driver killed midway loses only the runs in flight: finished runs
  are whole in the store (atomic writes), so the rerun executes exactly what is missing.

The table is always built from the store (results_table), so it is the same whichever executor ran
the runs, and the same on a rerun that executes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnlab.config import RunConfig, config_to_dict
from attnlab.sweep.executors import Executor, make_executor, split_tasks
from attnlab.sweep.failures import FailureLog
from attnlab.sweep.progress import sweep_progress
from attnlab.sweep.store import RunStore, run_id
from attnlab.sweep.tasks import CLAIMED, DONE, FAILED, run_batch, wait_for_claimed  # noqa: F401  (run_batch: the seed-batch hook)

PENDING, DIVERGED = "pending", "diverged"


class StoreNotWritable(OSError):
    """The run store cannot be written; the message names it."""


def check_writable(root: Path) -> None:
    """Raise StoreNotWritable (naming `root`) unless runs can be written under `root`."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as error:
        raise StoreNotWritable(f"run store {str(root)!r} is not writable "
                               f"({error.strerror or error}): choose a writable directory") from None


@dataclass
class Plan:
    """What a sweep would do now: `run` (to execute), `reuse` (finished), `failed` (skipped)."""

    run: list[RunConfig] = field(default_factory=list)
    reuse: list[RunConfig] = field(default_factory=list)
    failed: list[RunConfig] = field(default_factory=list)


def plan(configs: list[RunConfig], root: str | Path, retry_failed: bool = False) -> Plan:
    """Sort configs into to-run / reused / previously-failed (skipped unless retry_failed).

    A config listed twice is planned once.
    """
    store, failures, result = RunStore(root), FailureLog(root), Plan()
    for config in _unique(configs):
        if store.is_complete(config):
            result.reuse.append(config)
        elif failures.has(config) and not retry_failed:
            result.failed.append(config)
        else:
            result.run.append(config)
    return result


def group_by_seed(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """Group configs that differ only by seed (first-appearance order); each group is one batch."""
    groups: dict[str, list[RunConfig]] = {}
    for config in configs:
        key = json.dumps({k: v for k, v in config_to_dict(config).items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(config)
    return list(groups.values())


def run_sweep(configs: list[RunConfig], root: str | Path, executor: str | Executor = "local",
              workers: int | None = None, retry_failed: bool = False, progress: bool = True,
              **executor_options: Any) -> pd.DataFrame:
    """Execute what is missing from the store, then return the results table (see results_table).

    `executor` is "local", "dask" or "slurm" (or an Executor instance); `executor_options` go to it
    (dask: scheduler=...; slurm: partition=..., time_min=..., mem_gb=..., array_parallelism=...,
    cluster=...). Runs that differ only by seed are handed to one task (attnlab.run.run_many).
    """
    root = Path(root).resolve()
    todo = plan(configs, root, retry_failed).run
    if todo:
        check_writable(root)
        RunStore(root).clean_stale()
        engine = (make_executor(executor, root, workers=workers, **executor_options)
                  if isinstance(executor, str) else executor)
        tasks = split_tasks(group_by_seed(todo), engine.parallelism)
        try:
            with sweep_progress(len(todo), enabled=progress) as advance:
                claimed = []
                for outcomes in engine.map(tasks, root):
                    advance(outcomes)
                    claimed += [o.run_id for o in outcomes if o.status == CLAIMED]
                by_id = {run_id(config): config for config in todo}
                for key in claimed:   # runs another driver was training when this one reached them
                    advance([wait_for_claimed(by_id[key], root)])
        finally:
            if isinstance(executor, str):
                engine.close()
    return results_table(configs, root)


def results_table(configs: list[RunConfig], root: str | Path) -> pd.DataFrame:
    """One row per config (input order) from the store, running nothing.

    Columns: run_id, status ("done", "diverged" (finished, the loss left the finite numbers),
    "failed" or "pending"), the config flattened to dotted names
    (model.m, data.T, train.radius.c, seed, ...), every scalar of the run's summary flattened the
    same way (last.train_loss, best.step, average.val_loss, wall_time_s, versions.torch, ...), and
    error (the one-line reason of a failed run).
    """
    store, failures = RunStore(root), FailureLog(root)
    rows, config_columns, summary_columns = [], {}, {}
    for config in configs:
        flat_config = flatten(config_to_dict(config))
        config_columns.update(dict.fromkeys(flat_config))
        row: dict[str, Any] = {"run_id": run_id(config), "status": PENDING, **flat_config, "error": None}
        if store.is_complete(config):
            summary = {k: v for k, v in flatten(store.summary(config)).items() if k != "run_id"}
            summary = {(f"summary.{k}" if k in flat_config else k): v for k, v in summary.items()}
            summary_columns.update(dict.fromkeys(summary))
            row.update(summary, status=DIVERGED if summary.get("diverged_at") is not None else DONE)
        elif (record := failures.read(config)) is not None:
            row.update(status=FAILED, error=record.get("error"))
        rows.append(row)
    columns = ["run_id", "status", *config_columns, *summary_columns, "error"]
    return pd.DataFrame(rows, columns=columns)


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level with dotted keys; entries that are not scalars (lists) are dropped."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
    return flat


def write_table(table: pd.DataFrame, path: str | Path) -> tuple[Path, Path]:
    """Write `table` as Parquet at `path` and as CSV beside it (same stem), each atomically.

    Columns mixing numbers and strings (e.g. a radius of 3.0 or "none") are stored as strings in
    the Parquet file, which needs one type per column.
    """
    parquet = Path(path).with_suffix(".parquet")
    csv = parquet.with_suffix(".csv")
    parquet.parent.mkdir(parents=True, exist_ok=True)
    _atomic(parquet, lambda tmp: _parquet_safe(table).to_parquet(tmp, index=False))
    _atomic(csv, lambda tmp: table.to_csv(tmp, index=False))
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


def _atomic(final: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}-", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unique(configs: list[RunConfig]) -> list[RunConfig]:
    unique: dict[str, RunConfig] = {}
    for config in configs:
        unique.setdefault(run_id(config), config)
    return list(unique.values())
