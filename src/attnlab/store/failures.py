"""Failed runs: one JSON record per run that raised, kept next to the run store.

    ROOT/.failed/<run_id>.json   {run_id, error, traceback, config, host, time}

A record is written under a temporary name and renamed into place, so it is always whole. The store
wins over the record: once a run is complete its failure record is stale and is removed.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Callable

from attnlab.config import RunConfig, config_to_dict
from attnlab.store.atomic import atomic_write_text

FAILED_DIR = ".failed"


class FailureLog:
    """Failure records of the runs under `root`, addressed by config through `run_id` (the run
    store's identity: RunStore.failures is the log of its runs)."""

    def __init__(self, root: str | Path, run_id: Callable[[RunConfig], str]):
        self.folder = Path(root) / FAILED_DIR
        self.run_id = run_id

    def path(self, config: RunConfig) -> Path:
        return self.folder / f"{self.run_id(config)}.json"

    def has(self, config: RunConfig) -> bool:
        return self.path(config).is_file()

    def read(self, config: RunConfig) -> dict[str, Any] | None:
        """The record of `config`, or None when it has none (or it is unreadable)."""
        try:
            return json.loads(self.path(config).read_text())
        except (OSError, ValueError):
            return None

    def record(self, config: RunConfig, error: str, traceback: str) -> Path:
        """Write (atomically) that `config` raised `error` with `traceback`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"run_id": self.run_id(config), "error": error, "traceback": traceback,
                 "config": config_to_dict(config), "host": socket.gethostname(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return atomic_write_text(self.path(config), json.dumps(entry, indent=2))

    def clear(self, config: RunConfig) -> None:
        """Forget the failure of `config` (it was retried successfully)."""
        self.path(config).unlink(missing_ok=True)
