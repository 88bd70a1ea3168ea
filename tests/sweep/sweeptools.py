"""Helpers of the sweep tests: a tiny grid (each run well under a second) and table checks."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import yaml

import attnlab

TINY_BASE = {"model": {"name": "kernel-transformer", "m": 4},
             "data": {"name": "teacher", "n": 40, "T": 4, "d": 4, "K": 64},
             "train": {"method": "projgd", "steps": 20}}


def tiny_sweep(m_values=(4, 6), seeds=3, **extra) -> dict:
    """A sweep mapping of len(m_values) * seeds tiny runs."""
    return {"name": "tiny", "base": TINY_BASE, "axes": {"model.m": list(m_values)}, "seeds": seeds, **extra}


def write_sweep(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without what legitimately differs between two executions (timings, versions, how
    many seeds were trained together; the numbers themselves are compared to float tolerance)."""
    keep = [c for c in table.columns if c not in ("wall_time_s", "runs_stacked") and not c.startswith("versions.")]
    return table[keep].reset_index(drop=True)


def run_dirs(root: Path) -> list[Path]:
    """Complete run directories under root."""
    return [p.parent for p in root.glob("*/summary.json") if not p.parent.name.startswith(".")]


def subprocess_env() -> dict[str, str]:
    """Environment for child processes that import this checkout of attnlab, one thread each."""
    src = str(Path(attnlab.__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env
