"""The run store: one directory per run, named by the hash of the run's resolved config.

    ROOT/<run_id>/config.yaml     the resolved config
    ROOT/<run_id>/curves.parquet  recorded curves, one row per recorded step
    ROOT/<run_id>/summary.json    iterates' losses, wall time, library versions

The run id also covers RESULTS_VERSION, the version of what runs record. A run directory is
written under a temporary name and renamed into place when complete, so a
directory named by a run id is always whole; an interrupted run leaves only a `.incomplete-*` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from attnlab.config import RunConfig, config_to_dict, parse_config

SUMMARY, CURVES, CONFIG = "summary.json", "curves.parquet", "config.yaml"


# What a run records (summary metrics, curve columns). Bump it when a change of the code adds or
# redefines recorded quantities: runs stored before then get other ids, so they are never reused
# with a metric missing (they stay on disk, untouched).
RESULTS_VERSION = 2


def run_id(config: RunConfig) -> str:
    """16 hex digits of the SHA-256 of the resolved config's canonical JSON and RESULTS_VERSION."""
    canonical = json.dumps({"config": config_to_dict(config), "results_version": RESULTS_VERSION},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class RunStore:
    """Finished runs under `root`, addressed by config."""

    def __init__(self, root: str | Path = "runs"):
        self.root = Path(root)

    def path(self, config: RunConfig) -> Path:
        return self.root / run_id(config)

    def is_complete(self, config: RunConfig) -> bool:
        return (self.path(config) / SUMMARY).is_file()

    def write(self, config: RunConfig, curves: pd.DataFrame, summary: dict[str, Any]) -> Path:
        """Write a finished run atomically and return its directory."""
        final = self.path(config)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".incomplete-{final.name}-", dir=self.root))
        try:
            (tmp / CONFIG).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
            curves.to_parquet(tmp / CURVES, index=False)
            (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, default=_json_default))
            try:
                os.rename(tmp, final)
            except OSError:  # an identical run finished first: keep it
                if not (final / SUMMARY).is_file():
                    raise
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def summary(self, config: RunConfig) -> dict[str, Any]:
        return json.loads((self.path(config) / SUMMARY).read_text())

    def curves(self, config: RunConfig) -> pd.DataFrame:
        return pd.read_parquet(self.path(config) / CURVES)

    def configs(self) -> list[RunConfig]:
        """Configs of every complete run under root."""
        found = []
        for summary in sorted(self.root.glob(f"*/{SUMMARY}")):
            if not summary.parent.name.startswith("."):
                found.append(parse_config(yaml.safe_load((summary.parent / CONFIG).read_text())))
        return found


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a summary")
