"""The work one executor task does: run a group of configs into the store, recording failures.

The sweep does not know how a run is computed: it is handed a work function, `work(configs, root)`
(attnlab.run.run_many), which runs configs that differ only by seed into the store at `root`.
This module is what executors ship to worker processes (by reference); it does not import torch,
so a worker sets its thread count before torch is loaded.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from attnlab.config import RunConfig, load_plugins
from attnlab.store import DONE, FAILED, RunStore
from attnlab.sweep.locks import RunLocks

Work = Callable[[list[RunConfig], Path], object]   # runs configs (equal but for the seed) into the store at root

LOCKED = "locked"   # another driver holds the run's lock: it is training it
LOCK_POLL_S = 0.5   # how often a driver looks at a run another driver is training


@dataclass(frozen=True)
class Outcome:
    """What became of one run: `status` is DONE, FAILED (then `error` says why) or LOCKED (another
    driver is training it: wait_for_locked waits for it)."""

    run_id: str
    status: str
    error: str | None = None


def set_threads(threads: int | None) -> None:
    """Limit torch (and the BLAS libraries under it) to `threads` threads; None leaves the defaults."""
    if threads is None:
        return
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with torch limited to `threads` threads, then restore (None: no change)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_group(configs: list[RunConfig], store: RunStore, work: Work, threads: int | None = None,
              plugins: tuple[str, ...] = ()) -> list[Outcome]:
    """Executor entry point: set the thread count, import the driver's plugins (attnlab.config.plugins),
    then :func:`run_batch`. Never raises for a run."""
    set_threads(threads)
    load_plugins(list(plugins))
    return run_batch(configs, store, work)


def run_batch(configs: list[RunConfig], store: RunStore, work: Work) -> list[Outcome]:
    """Run configs that differ only by seed through one call of `work`.

    Runs already in the store are reused. Each run is locked first (locks.py): a run another
    driver is training is not trained twice: its outcome is LOCKED. If the batched call raises,
    the runs are retried one by one so that only the run that fails is recorded as failed (in
    ROOT/.failed/<run_id>.json, with its traceback and config) and the others still finish.
    Returns one Outcome per config, in order.
    """
    locks, key = RunLocks(store.root, store.run_id), store.run_id
    pending = [config for config in configs if not store.is_complete(config)]
    mine = {key(config) for config in pending if locks.take(config)}
    try:
        batch = [config for config in pending if key(config) in mine]
        if len(batch) > 1:
            try:
                work(batch, store.root)
            except Exception:  # find the culprit below, one run at a time
                pass
        outcomes: dict[str, Outcome] = {}
        for config in configs:   # runs locked by another driver wait below
            if key(config) in mine or key(config) not in {key(c) for c in pending}:
                outcomes[key(config)] = _run_one(config, store, work)
        for config in configs:   # the driver waits for these once its own work is done
            outcomes.setdefault(key(config), Outcome(key(config), LOCKED))
    finally:
        for config in pending:
            if key(config) in mine:
                locks.release(config)
    return [outcomes[key(config)] for config in configs]


def _run_one(config: RunConfig, store: RunStore, work: Work) -> Outcome:
    """Run (or reuse) one config, recording its failure."""
    try:
        if not store.is_complete(config):
            work([config], store.root)
    except Exception as error:
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        store.failures.record(config, message, traceback.format_exc())
        return Outcome(store.run_id(config), FAILED, message)
    store.failures.clear(config)
    return Outcome(store.run_id(config), DONE)


def wait_for_locked(config: RunConfig, store: RunStore, work: Work) -> Outcome:
    """The outcome of a run another driver locked: its result once it is stored, the failure it
    recorded when it gave up its lock, or this process's own run when the lock went stale."""
    failures, locks, since = store.failures, RunLocks(store.root, store.run_id), time.time()
    while True:
        if store.is_complete(config):
            return Outcome(store.run_id(config), DONE)
        if not locks.held_elsewhere(config):
            record = failures.path(config)
            if record.is_file() and record.stat().st_mtime >= since - 1:   # it failed there
                error = (failures.read(config) or {}).get("error")
                return Outcome(store.run_id(config), FAILED, error)
            if locks.take(config):
                try:
                    return _run_one(config, store, work)
                finally:
                    locks.release(config)
        time.sleep(LOCK_POLL_S)


def engine_failure(configs: list[RunConfig], store: RunStore, error: BaseException) -> list[Outcome]:
    """Record every unfinished run of a task the engine gave up on (worker died too often, ...)."""
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    details = "".join(traceback.format_exception(error))
    outcomes = []
    for config in configs:
        if store.is_complete(config):
            outcomes.append(Outcome(store.run_id(config), DONE))
        else:
            store.failures.record(config, message, details)
            outcomes.append(Outcome(store.run_id(config), FAILED, message))
    return outcomes
