"""A sweep whose driver is SIGKILLed midway completes on rerun, every run present exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from attnlab.sweep.grid import load_sweep, expand
from attnlab.run import open_store, run_many
from attnlab.sweep.runner import run_sweep

from sweeptools import comparable, run_dirs, subprocess_env, tiny_sweep, write_sweep


def sweep_command(path, root) -> list[str]:
    return [sys.executable, "-m", "attnlab.cli", "sweep", str(path), "--root", str(root),
            "--workers", "2", "--quiet"]


def test_killed_driver_then_rerun_completes_with_the_same_numbers(tmp_path, one_thread):
    path = write_sweep(tmp_path / "tiny.yaml", tiny_sweep(m_values=(4, 6, 8, 10), seeds=3))
    configs = expand(load_sweep(path))
    root = tmp_path / "killed"
    driver = subprocess.Popen(sweep_command(path, root), env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(run_dirs(root)) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    finished_at_kill = len(run_dirs(root))
    assert 2 <= finished_at_kill < len(configs), "the driver was not killed midway"
    time.sleep(1.5)  # pool workers notice the dead driver and exit (they poll every 0.5 s)

    rerun = subprocess.run(sweep_command(path, root), env=subprocess_env(), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    table = pd.read_parquet(root / "tiny.parquet")
    assert len(table) == len(configs) and table["run_id"].is_unique
    assert (table["status"] == "done").all()
    assert sorted(p.name for p in run_dirs(root)) == sorted(table["run_id"])

    uninterrupted = run_sweep(configs, open_store(tmp_path / "straight"), run_many, workers=1, progress=False)
    expected = comparable(uninterrupted)
    got = comparable(table)[expected.columns]
    for column in expected.columns:  # Parquet stores mixed/None columns its own way: compare values
        if pd.api.types.is_float_dtype(expected[column]):   # runs trained alone or stacked with other
            np.testing.assert_allclose(got[column], expected[column], rtol=1e-5, err_msg=column)  # seeds
        else:
            assert [str(v) for v in got[column]] == [str(v) for v in expected[column]], column
