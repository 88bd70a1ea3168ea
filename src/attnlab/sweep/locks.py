"""Run locks: a driver locks a run before training it, so that concurrent drivers of the same
sweep share the work instead of training every run twice.

    ROOT/.claims/<run_id>.lock   {"pid", "host", "time"}, created with O_CREAT | O_EXCL

(The folder keeps its name, so that drivers of older versions and of this one see each other's
locks.) Creating the file is atomic: of two drivers, exactly one gets the lock. A lock is stale
when its process is gone (a lock of this host) or it is older than LOCK_EXPIRY_S (a lock of another
host, whose process cannot be checked), or when it is still unreadable (empty or garbage)
LOCK_WRITE_S after it was created (its writer died or its disk was full); a stale lock may be
broken and taken. A lock whose content cannot be written is removed at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from attnlab.config import RunConfig
from attnlab.store.runs import pid_alive

LOCKS_DIR = ".claims"
LOCK_EXPIRY_S = 12 * 3600
LOCK_WRITE_S = 10.0   # an unreadable lock older than this is not being written: it is stale


class RunLocks:
    """The locks on the runs under `root` (named by `run_id`, the store's), taken by this process."""

    def __init__(self, root: str | Path, run_id: Callable[[RunConfig], str]):
        self.folder = Path(root) / LOCKS_DIR
        self.run_id = run_id

    def path(self, config: RunConfig) -> Path:
        return self.folder / f"{self.run_id(config)}.lock"

    def take(self, config: RunConfig) -> bool:
        """Lock `config` for this process; False when another live lock holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(config)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.is_ours(config):
                    return True
                if not self._break_if_stale(path):
                    return False
                continue
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}, handle)
            except BaseException:   # a full disk, an interrupt: leave no unreadable lock behind
                path.unlink(missing_ok=True)
                raise
            return True
        return False

    def held_elsewhere(self, config: RunConfig) -> bool:
        """Whether a live lock of another process holds `config`."""
        path = self.path(config)
        return path.exists() and not self.is_ours(config) and not _is_stale(path, _read(path))

    def is_ours(self, config: RunConfig) -> bool:
        owner = _read(self.path(config))
        return owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()

    def release(self, config: RunConfig) -> None:
        """Give up the lock on `config` if this process holds it."""
        if self.is_ours(config):
            self.path(config).unlink(missing_ok=True)

    def _break_if_stale(self, path: Path) -> bool:
        """Remove the lock at `path` if it is stale; True when it was removed."""
        owner = _read(path)
        if not _is_stale(path, owner):
            return False
        moved = path.with_name(f".broken-{path.name}-{os.getpid()}")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return True   # another driver broke it first
        if _read(moved) != owner:   # a fresh lock was taken in between: put it back
            with contextlib.suppress(OSError):
                os.link(moved, path)
        moved.unlink(missing_ok=True)
        return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _is_stale(path: Path, owner: dict[str, Any] | None) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False   # gone: nothing to break
    if owner is None:   # being written this moment, or left unreadable by a writer that failed
        return age > LOCK_WRITE_S
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not pid_alive(owner["pid"])
    return age > LOCK_EXPIRY_S
