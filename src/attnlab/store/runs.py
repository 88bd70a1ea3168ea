"""The run store: one directory per run, named by the hash of the run's resolved config.

    ROOT/<run_id>/config.yaml     the resolved config
    ROOT/<run_id>/curves.parquet  recorded curves, one row per recorded step
    ROOT/<run_id>/summary.json    iterates' losses, wall time, library versions (strict JSON:
                                  non-finite numbers are stored as "NaN", "Infinity", "-Infinity")
    ROOT/<run_id>/complete.json   written last: the SHA-256 of each file above

The run id (identity.py) also covers the results version, the version of what runs record. A run
directory is written under a temporary name (`.incomplete-<run_id>-<pid>@<host>-*`) and renamed into place when
complete. A run counts as complete only when its marker is there and every checksum matches; a
directory that is damaged (a file changed, truncated or deleted) is named in a warning and
recomputed, and so is a directory that holds another run's config (two directories swapped). The
checksums of config.yaml and summary.json are also kept in the metadata of curves.parquet: a directory
whose marker was deleted is checked against them. A directory written before markers existed (no such
metadata) is checked by parsing its files, and adopted (marker added) when they all parse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from attnlab.config import ConfigError, RunConfig, config_to_dict, flatten, parse_config, upgrade_stored
from attnlab.store.atomic import atomic_write_text
from attnlab.store.failures import FailureLog
from attnlab.store.identity import run_id

SUMMARY, CURVES, CONFIG, COMPLETE = "summary.json", "curves.parquet", "config.yaml", "complete.json"
CHECKED = (CONFIG, CURVES, SUMMARY)
DONE, DIVERGED, FAILED, PENDING = "done", "diverged", "failed", "pending"   # statuses of a run
CURVES_SUMS = "attnlab.sha256"   # key of the checksums of config.yaml and summary.json in curves.parquet
STALE_AFTER_S = 24 * 3600   # a temporary folder of another host is left alone this long

log = logging.getLogger("attnlab.store")
_warned: set[tuple[str, str]] = set()


class RunStore:
    """Finished runs under `root`, addressed by config; `results_version` (part of every run id) is
    the version of what the code records (attnlab.train.RESULTS_VERSION)."""

    def __init__(self, root: str | Path, results_version: str):
        self.root = Path(root)
        self.results_version = results_version
        self.failures = FailureLog(self.root, self.run_id)

    def run_id(self, config: RunConfig) -> str:
        return run_id(config, self.results_version)

    def path(self, config: RunConfig) -> Path:
        return self.root / self.run_id(config)

    def is_complete(self, config: RunConfig) -> bool:
        """Whether the run's directory is whole and holds this config; a damaged one, or one holding
        another run, is named in a warning (once)."""
        path = self.path(config)
        if not path.exists():
            return False
        problem = check_run_dir(path, config_to_dict(config))
        if problem is not None:
            _warn_once(path, f"run directory {path}: {problem}; it will be recomputed")
        return problem is None

    def write(self, config: RunConfig, curves: pd.DataFrame, summary: dict[str, Any],
              replace: bool = False) -> Path:
        """Write a finished run atomically and return its directory.

        An existing whole directory is kept (an identical run finished first) unless `replace`;
        a damaged one, or any with `replace`, is swapped for the new one in one atomic exchange,
        so the old result stays readable until the new one is complete.
        """
        final = self.path(config)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(final.name)}-", dir=self.root))
        try:
            texts = {CONFIG: yaml.safe_dump(config_to_dict(config), sort_keys=False), SUMMARY: dumps_summary(summary)}
            (tmp / CONFIG).write_text(texts[CONFIG])
            _write_curves(tmp / CURVES, curves, {name: _sha256_text(text) for name, text in texts.items()})
            (tmp / SUMMARY).write_text(texts[SUMMARY])
            _write_marker(tmp)
            try:
                os.rename(tmp, final)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if not replace and check_run_dir(final, config_to_dict(config)) is None:   # an identical run finished first
                    shutil.rmtree(tmp)
                else:
                    _exchange(tmp, final)   # tmp now holds the old directory
                    shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def summary(self, config: RunConfig) -> dict[str, Any]:
        return read_summary(self.path(config))

    def curves(self, config: RunConfig) -> pd.DataFrame:
        return pd.read_parquet(self.path(config) / CURVES)

    def table(self, configs: list[RunConfig] | None = None) -> pd.DataFrame:
        """One row per config (input order), running nothing; without configs, one row per whole run
        directory under root (whatever results version wrote it).

        Columns: run_id, status ("done"; "diverged": finished, the loss left the finite numbers;
        "failed"; "pending": neither stored nor failed), the config flattened to dotted names
        (model.m, data.T, train.radius.c, seed, ...), every entry of the run's summary flattened the
        same way (last.train_loss, best.step, wall_time_s, versions.torch, ...; a summary key equal
        to a config column is prefixed "summary."), and error (the one-line reason of a failure).
        """
        if configs is None:
            runs = [(path, upgrade_stored(yaml.safe_load((path / CONFIG).read_text())), None)
                    for path in self._whole_dirs()]
        else:
            runs = [(self.path(c), config_to_dict(c), c) for c in configs]
        rows, config_columns, summary_columns = [], {}, {}
        for path, config, validated in runs:
            flat_config = flatten(config)
            config_columns.update(dict.fromkeys(flat_config))
            row: dict[str, Any] = {"run_id": path.name, "status": PENDING, **flat_config, "error": None}
            if validated is None or self.is_complete(validated):
                summary = {k: v for k, v in flatten(read_summary(path)).items() if k != "run_id"}
                summary = {(f"summary.{k}" if k in flat_config else k): v for k, v in summary.items()}
                summary_columns.update(dict.fromkeys(summary))
                row.update(summary, status=DIVERGED if summary.get("diverged_at") is not None else DONE)
            elif (record := self.failures.read(validated)) is not None:
                row.update(status=FAILED, error=record.get("error"))
            rows.append(row)
        return pd.DataFrame(rows, columns=["run_id", "status", *config_columns, *summary_columns, "error"])

    def _whole_dirs(self) -> list[Path]:
        """Every whole run directory under root, by name (damaged ones, and copies of a run under
        another name than its run id, are named in a warning)."""
        folders = sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        whole = []
        for path in (p for p in folders if not p.name.startswith(".")):
            problem = check_run_dir(path)
            if problem is None:
                held = read_summary(path).get("run_id", path.name)
                if held == path.name:
                    whole.append(path)
                else:
                    _warn_once(path, f"run directory {path}: a copy of run {held} (its folder has another "
                                     "name); skipped")
            elif (path / CONFIG).exists() or (path / SUMMARY).exists():
                _warn_once(path, f"run directory {path}: {problem}; skipped")
        return whole

    def clean_stale(self) -> list[Path]:
        """Remove the temporary folders of writers that are gone: a process of this host that no
        longer exists, or any writer after STALE_AFTER_S. Returns what was removed."""
        removed = []
        if not self.root.is_dir():
            return removed
        for folder in self.root.glob(".incomplete-*"):
            if folder.is_dir() and _writer_is_gone(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


# ------------------------------------------------------------------------------ run directories
def thin_copy(source: Path, dest: Path, every: int) -> None:
    """Copy the whole run directory `source` to `dest` (a new path) with its curves thinned to the
    rows of every `every`-th step and the last row, marked complete anew: a small copy to ship in a
    repository, which any store adopts as the finished run (config and summary are unchanged)."""
    if every < 1:
        raise ValueError(f"every = {every}: must be a positive number of steps")
    problem = check_run_dir(source)
    if problem is not None:
        raise ValueError(f"run directory {source}: {problem}")
    curves = pd.read_parquet(source / CURVES)
    if "step" in curves and len(curves):
        keep = (curves["step"] % every == 0) | (curves.index == curves.index[-1])
        curves = curves[keep].reset_index(drop=True)
    texts = {name: (source / name).read_text() for name in (CONFIG, SUMMARY)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(dest.name)}-", dir=dest.parent))
    try:
        for name, text in texts.items():
            (tmp / name).write_text(text)
        _write_curves(tmp / CURVES, curves, {name: _sha256_text(text) for name, text in texts.items()})
        _write_marker(tmp)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_run_dir(path: Path, config: dict[str, Any] | None = None) -> str | None:
    """None when the run directory `path` is whole (and holds `config`, the resolved config as
    config_to_dict gives it, when given; a config.yaml of an older spelling is read in today's,
    upgrade_stored), else what is wrong with it (one phrase)."""
    marker = path / COMPLETE
    problem = _check_marker(path) if marker.is_file() else _adopt_legacy(path)
    if problem is None and config is not None:
        try:
            held = yaml.safe_load((path / CONFIG).read_text())
        except (OSError, yaml.YAMLError):
            return f"{CONFIG} is unreadable"
        if upgrade_stored(held) != config:
            return f"it holds another run's {CONFIG} (directories moved or swapped)"
    return problem


def _check_marker(path: Path) -> str | None:
    try:
        sums = json.loads((path / COMPLETE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{COMPLETE} is unreadable"
    for name in CHECKED:
        try:
            digest = _sha256(path / name)
        except OSError:
            return f"{name} is missing"
        if digest != sums.get(name):
            return f"{name} does not match its checksum (damaged or edited)"
    return None


def _write_curves(path: Path, curves: pd.DataFrame, sums: dict[str, str]) -> None:
    """curves as Parquet, with the checksums `sums` of the other files in its metadata (the frame's
    attrs[CURVES_SUMS], which pandas keeps in the file)."""
    curves = curves.copy(deep=False)
    curves.attrs[CURVES_SUMS] = sums
    curves.to_parquet(path, index=False)


def _kept_sums(path: Path) -> dict[str, str]:
    """The checksums _write_curves kept in the Parquet file `path` ({} when there are none)."""
    import pyarrow.parquet as pq

    attrs = (pq.read_table(path).schema.metadata or {}).get(b"PANDAS_ATTRS")
    sums = json.loads(attrs).get(CURVES_SUMS, {}) if attrs else {}
    return sums if isinstance(sums, dict) else {}


def _adopt_legacy(path: Path) -> str | None:
    """A directory without its completion marker: whole if its three files parse and, when its
    curves.parquet keeps the checksums of the other files (a directory of this store whose marker
    was lost), they match; the marker is then added where the store is writable. Else what is wrong."""
    for name in CHECKED:
        if not (path / name).is_file():
            return f"{name} is missing" if name != SUMMARY or (path / CONFIG).exists() else "not a run"
    try:
        parse_config(upgrade_stored(yaml.safe_load((path / CONFIG).read_text())))
    except (OSError, yaml.YAMLError, ConfigError, TypeError) as error:
        return f"{CONFIG} does not parse ({str(error).splitlines()[0]})"
    try:
        read_summary(path)
    except (OSError, ValueError) as error:
        return f"{SUMMARY} does not parse ({error})"
    try:
        sums = _kept_sums(path / CURVES)
    except Exception as error:   # pyarrow raises ArrowInvalid, OSError, ...; json ValueError
        return f"{CURVES} does not parse ({str(error).splitlines()[0]})"
    for name in (CONFIG, SUMMARY):
        if name in sums and _sha256(path / name) != sums[name]:
            return f"{name} does not match the checksum kept in {CURVES} (edited?)"
    try:
        _write_marker(path)
    except OSError:
        pass   # a read-only store: it is checked by parsing each time
    return None


def _write_marker(folder: Path) -> None:
    sums = {name: _sha256(folder / name) for name in CHECKED}
    atomic_write_text(folder / COMPLETE, json.dumps({"sha256": sums}, indent=2))


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _warn_once(path: Path, message: str) -> None:
    key = (str(path), message)
    if key not in _warned:
        _warned.add(key)
        log.warning("warning: %s", message)


# ------------------------------------------------------------------------------------ summaries
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def dumps_summary(summary: dict[str, Any]) -> str:
    """Strict JSON of a summary: NaN and infinities become the strings "NaN", "Infinity", "-Infinity"."""
    return json.dumps(_encode(summary), indent=2, allow_nan=False)


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The summary of the run directory `run_dir`, non-finite numbers read back as floats.
    Raises ValueError naming the file when it does not parse."""
    path = Path(run_dir) / SUMMARY
    try:
        return _decode(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a summary")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


# -------------------------------------------------------------------------- temporary folders
_TEMP = re.compile(r"^\.incomplete-[0-9a-f]+-(\d+)@(.+)-[^-]+$")


def _temp_prefix(name: str) -> str:
    return f".incomplete-{name}-{os.getpid()}@{socket.gethostname()}"


def _writer_is_gone(folder: Path) -> bool:
    match = _TEMP.match(folder.name)
    if match and match.group(2) == socket.gethostname():
        return not pid_alive(int(match.group(1)))
    try:
        return time.time() - folder.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap the directories `a` and `b` atomically (Linux renameat2); elsewhere in two renames."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, f"cannot replace {b}: {os.strerror(code)}")
    aside = b.with_name(f".old-{b.name}-{os.getpid()}")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
