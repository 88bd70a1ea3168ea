"""`attnlab sweep`: dry run, the results table files, failures and --retry-failed."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import attnlab.run
from attnlab.cli import app
from attnlab.sweep.executors import LocalExecutor, available_cpus, make_executor
from attnlab.sweep.grid import expand, load_sweep
from attnlab.run import run_id

from sweeptools import run_dirs, tiny_sweep, write_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args: str):
    return CliRunner().invoke(app, ["sweep", *args])


def test_dry_run_lists_runs_and_reuse_and_writes_nothing(tmp_path):
    path = write_sweep(tmp_path / "tiny.yaml", tiny_sweep(m_values=(4, 6), seeds=2))
    configs = expand(load_sweep(path))
    root = tmp_path / "runs"
    before = invoke(str(path), "--root", str(root), "--dry-run")
    assert before.exit_code == 0, before.output
    lines = before.output.strip().splitlines()
    assert lines[0] == "4 to run, 0 reused, 0 failed before"
    assert lines[1].split() == ["run", run_id(configs[0]), "model.m=4", "seed=0"]
    assert not root.exists()

    done = invoke(str(path), "--root", str(root), "--workers", "1", "--quiet")
    assert done.exit_code == 0, done.output
    assert "4 runs: 4 done, 0 failed" in done.output
    table = pd.read_parquet(root / "tiny.parquet")
    assert list(table["run_id"]) == [run_id(c) for c in configs]
    assert list(pd.read_csv(root / "tiny.csv")["run_id"]) == list(table["run_id"])

    after = invoke(str(path), "--root", str(root), "--dry-run")
    lines = after.output.strip().splitlines()
    assert lines[0] == "0 to run, 4 reused, 0 failed before"
    assert [line.split()[0] for line in lines[1:]] == ["reuse"] * 4


def test_failed_run_exits_nonzero_and_retry_failed_completes(tmp_path, monkeypatch):
    path = write_sweep(tmp_path / "tiny.yaml", tiny_sweep(m_values=(4,), seeds=2))
    root, out = tmp_path / "runs", tmp_path / "tables" / "result.parquet"
    real = attnlab.run.setup

    def breaks_on_seed_1(config, *args, **kwargs):
        if config.seed == 1:
            raise RuntimeError("diverged")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(attnlab.run, "setup", breaks_on_seed_1)
    first = invoke(str(path), "--root", str(root), "--workers", "1", "--quiet", "--out", str(out))
    assert first.exit_code == 1
    assert "2 runs: 1 done, 1 failed" in first.output and "--retry-failed" in first.output
    assert list(pd.read_parquet(out)["status"]) == ["done", "failed"]
    plan = invoke(str(path), "--root", str(root), "--dry-run", "--retry-failed")
    assert plan.output.startswith("1 to run, 1 reused, 0 failed before")

    monkeypatch.setattr(attnlab.run, "setup", real)
    again = invoke(str(path), "--root", str(root), "--workers", "1", "--quiet", "--out", str(out), "--retry-failed")
    assert again.exit_code == 0, again.output
    assert list(pd.read_parquet(out)["status"]) == ["done", "done"]
    assert len(run_dirs(root)) == 2


def test_local_executor_is_a_process_pool_sized_to_the_machine(tmp_path):
    executor = make_executor("local", tmp_path)
    assert isinstance(executor, LocalExecutor)
    assert executor.workers == executor.parallelism == available_cpus()
    assert executor.threads == max(1, available_cpus() // executor.workers)


@pytest.mark.parametrize("args, message", [
    (["--executor", "spark"], "--executor 'spark': expected local, dask or slurm"),
    (["--executor", "dask"], "--executor dask needs --scheduler tcp://HOST:PORT"),
    (["--workers", "0"], "workers = 0: expected at least 1"),
])
def test_bad_options_are_named(tmp_path, args, message):
    path = write_sweep(tmp_path / "tiny.yaml", tiny_sweep(m_values=(4,), seeds=1))
    done = invoke(str(path), "--root", str(tmp_path / "runs"), "--quiet", *args)
    assert done.exit_code != 0
    assert message in done.output
    assert not run_dirs(tmp_path / "runs")  # nothing ran
